//! `lab probe`: one-shot traffic from the current namespace (run it through `lab exec`), so
//! tests and users need no ping, netcat or curl. Each probe prints one line and succeeds only
//! when the peer answered as expected within the timeout.
//!
//! ICMP uses a raw socket (root or CAP_NET_RAW): namespaces the lab creates keep the kernel's
//! default `ping_group_range`, which allows no unprivileged ICMP sockets.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Protocol, Socket, Type};
use vigil_lab::wire;

/// Sends one ICMP echo request and waits for its reply.
pub fn icmp(addr: IpAddr, timeout: Duration) -> Result<()> {
    let (domain, protocol) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))
        .context("opening a raw ICMP socket (needs root or CAP_NET_RAW)")?;
    // A connected raw socket only receives packets from that peer.
    socket
        .connect(&SocketAddr::new(addr, 0).into())
        .with_context(|| format!("no route to {addr}"))?;
    let id = (std::process::id() & 0xffff) as u16;
    let seq = 1;
    let started = Instant::now();
    socket
        .send(&wire::echo_request(addr, id, seq, b"vigil-lab probe"))
        .with_context(|| format!("sending an echo request to {addr}"))?;
    let deadline = started + timeout;
    let mut buffer = [0u8; 2048];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("icmp {addr}: no reply within {timeout:?}");
        }
        socket
            .set_read_timeout(Some(remaining))
            .context("setting the socket timeout")?;
        match (&socket).read(&mut buffer) {
            Ok(len) => {
                if wire::parse_echo_reply(addr, &buffer[..len]) == Some((id, seq)) {
                    println!("icmp {addr}: reply in {:?}", started.elapsed());
                    return Ok(());
                }
            }
            Err(error) if is_timeout(&error) => bail!("icmp {addr}: no reply within {timeout:?}"),
            Err(error) => return Err(error).with_context(|| format!("icmp {addr}: receiving")),
        }
    }
}

/// Connects, sends a line and expects the same line back.
pub fn tcp(addr: IpAddr, port: u16, timeout: Duration) -> Result<()> {
    let peer = SocketAddr::new(addr, port);
    let stream = connect(peer, timeout)?;
    let message = format!("vigil-lab probe {}\n", std::process::id());
    (&stream)
        .write_all(message.as_bytes())
        .with_context(|| format!("tcp {peer}: sending"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .with_context(|| format!("tcp {peer}: no echo within {timeout:?}"))?;
    if reply != message {
        bail!("tcp {peer}: expected the echo {message:?}, got {reply:?}");
    }
    println!("tcp {peer}: echoed");
    Ok(())
}

/// Sends a datagram and expects the same datagram back.
pub fn udp(addr: IpAddr, port: u16, timeout: Duration) -> Result<()> {
    let peer = SocketAddr::new(addr, port);
    let local: SocketAddr = match addr {
        IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).context("binding a UDP socket")?;
    socket
        .connect(peer)
        .with_context(|| format!("udp {peer}: no route"))?;
    socket
        .set_read_timeout(Some(timeout))
        .context("setting the socket timeout")?;
    let message = format!("vigil-lab probe {}", std::process::id());
    socket
        .send(message.as_bytes())
        .with_context(|| format!("udp {peer}: sending"))?;
    let mut buffer = [0u8; 2048];
    let len = socket
        .recv(&mut buffer)
        .with_context(|| format!("udp {peer}: no echo within {timeout:?}"))?;
    if &buffer[..len] != message.as_bytes() {
        bail!("udp {peer}: the echo differs from what was sent");
    }
    println!("udp {peer}: echoed");
    Ok(())
}

/// Sends one HTTP/1.1 request and expects a 2xx status; prints the status line and body.
pub fn http(addr: IpAddr, port: u16, method: &str, path: &str, timeout: Duration) -> Result<()> {
    let peer = SocketAddr::new(addr, port);
    let stream = connect(peer, timeout)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {peer}\r\nConnection: close\r\nUser-Agent: vigil-lab\r\n\r\n"
    );
    (&stream)
        .write_all(request.as_bytes())
        .with_context(|| format!("http {peer}: sending"))?;
    let mut response = String::new();
    (&stream)
        .take(1 << 20)
        .read_to_string(&mut response)
        .with_context(|| format!("http {peer}: reading the answer"))?;
    let status_line = response.lines().next().unwrap_or_default();
    let ok = status_line
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('2') && code.len() == 3);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    println!("http {peer}: {status_line}");
    print!("{body}");
    if !ok {
        bail!("http {peer}: {method} {path} answered {status_line:?}");
    }
    Ok(())
}

fn connect(peer: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&peer, timeout)
        .with_context(|| format!("tcp {peer}: cannot connect"))?;
    stream
        .set_read_timeout(Some(timeout))
        .context("setting the socket timeout")?;
    stream
        .set_write_timeout(Some(timeout))
        .context("setting the socket timeout")?;
    Ok(stream)
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
