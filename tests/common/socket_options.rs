//! Raw clients with socket options the plain `connect` does not set: a chosen source address
//! (loopback has a whole /8, so tests can be several clients) and a small receive buffer
//! (a client that never reads fills it fast).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use super::RawClient;

impl RawClient {
    /// A plain TCP connection from `source` (an address of this host, e.g. 127.0.0.2).
    pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> RawClient {
        Self::connect_with(addr, Some(source), None).await
    }

    /// A plain TCP connection with the given source address and receive buffer size.
    pub async fn connect_with(
        addr: SocketAddr,
        source: Option<IpAddr>,
        receive_buffer: Option<u32>,
    ) -> RawClient {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("socket");
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .expect("bind source");
        }
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("receive buffer");
        }
        RawClient::over_tcp(socket.connect(addr).await.expect("connect"))
    }

    /// Sends raw XML and reports a closed or reset connection instead of panicking.
    pub async fn try_send(&mut self, xml: &[u8]) -> io::Result<()> {
        self.io.write_all(xml).await?;
        self.io.flush().await
    }
}
