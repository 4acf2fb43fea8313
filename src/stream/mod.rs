//! XML streams (RFC 6120 §4): the byte-counting reader, the element reader and the writer.

pub mod counting;
pub mod reader;
pub mod writer;
