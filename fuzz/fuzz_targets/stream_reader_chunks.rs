//! The stream reader as a peer's TCP segments feed it: the same bytes cut differently must give
//! the same header, the same elements and the same error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rempart_fuzz::{read_stream, Split};

fuzz_target!(|input: &[u8]| {
    let Some((seed, data)) = input.split_first_chunk::<8>() else {
        return;
    };
    let whole = read_stream(data, Split::Whole);
    let seeded = read_stream(data, Split::Seeded(u64::from_le_bytes(*seed)));
    assert_eq!(whole, seeded, "a random split changed what was read");
    let bytewise = read_stream(data, Split::Bytewise);
    assert_eq!(whole, bytewise, "one byte per read changed what was read");
});
