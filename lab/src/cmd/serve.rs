//! `lab serve` (hidden): the listeners `lab up` runs inside pods and external hosts, so traffic
//! tests have something to talk to. Dual-stack (`[::]` accepting IPv4 too).
//!
//! TCP: if the first line is an HTTP/1.x request line, answer `200` naming this server and the
//! request, then close; otherwise echo every line until the peer closes. UDP: echo each
//! datagram. It prints `ready` on stdout once every socket is bound, then never writes there
//! again (its stdout is a pipe that `lab up` closes).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use socket2::{Domain, Protocol, Socket, Type};
use vigil_lab::wire;

/// At most this many TCP connections are served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 256;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line read; longer input is handled in pieces of this size.
const MAX_LINE: u64 = 8192;

/// Binds every listener, reports readiness, and serves until killed.
pub fn run(name: &str, tcp: &[u16], udp: &[u16]) -> Result<()> {
    if tcp.is_empty() && udp.is_empty() {
        bail!("nothing to serve: give --tcp PORT or --udp PORT");
    }
    let tcp_listeners: Vec<TcpListener> = tcp
        .iter()
        .map(|port| bind_tcp(*port))
        .collect::<Result<_>>()?;
    let udp_sockets: Vec<UdpSocket> = udp
        .iter()
        .map(|port| bind_udp(*port))
        .collect::<Result<_>>()?;

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "ready").context("reporting readiness")?;
    stdout.flush().context("reporting readiness")?;
    drop(stdout);
    tracing::info!(%name, ?tcp, ?udp, "listening");

    let name: Arc<str> = Arc::from(name);
    let active = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (listener, port) in tcp_listeners.into_iter().zip(tcp) {
        let (name, active) = (Arc::clone(&name), Arc::clone(&active));
        threads.push(
            thread::Builder::new()
                .name(format!("tcp-{port}"))
                .spawn(move || accept_loop(&listener, &name, &active))
                .context("starting a TCP thread")?,
        );
    }
    for (socket, port) in udp_sockets.into_iter().zip(udp) {
        threads.push(
            thread::Builder::new()
                .name(format!("udp-{port}"))
                .spawn(move || echo_udp(&socket))
                .context("starting a UDP thread")?,
        );
    }
    for thread in threads {
        match thread.join() {
            Ok(result) => result?,
            Err(_) => bail!("a listener thread panicked"),
        }
    }
    Ok(())
}

fn dual_stack_socket(kind: Type, protocol: Protocol, port: u16) -> Result<Socket> {
    let socket = Socket::new(Domain::IPV6, kind, Some(protocol))
        .with_context(|| format!("opening a socket for port {port}"))?;
    socket
        .set_only_v6(false)
        .context("making the socket dual-stack")?;
    socket
        .set_reuse_address(true)
        .context("setting SO_REUSEADDR")?;
    let address = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    socket
        .bind(&address.into())
        .with_context(|| format!("binding {address}"))?;
    Ok(socket)
}

fn bind_tcp(port: u16) -> Result<TcpListener> {
    let socket = dual_stack_socket(Type::STREAM, Protocol::TCP, port)?;
    socket
        .listen(128)
        .with_context(|| format!("listening on tcp port {port}"))?;
    Ok(socket.into())
}

fn bind_udp(port: u16) -> Result<UdpSocket> {
    Ok(dual_stack_socket(Type::DGRAM, Protocol::UDP, port)?.into())
}

fn accept_loop(listener: &TcpListener, name: &Arc<str>, active: &Arc<AtomicUsize>) -> Result<()> {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Aborted handshakes and the like concern one client, not the listener.
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "too many connections; closing");
            continue;
        }
        let (name, active) = (Arc::clone(name), Arc::clone(active));
        let spawned = thread::Builder::new()
            .name("conn".to_owned())
            .spawn(move || {
                if let Err(error) = serve_connection(stream, &name) {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start a connection thread");
        }
    }
}

fn serve_connection(stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let mut line = Vec::new();
        if (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if std::mem::take(&mut first) {
            let text = String::from_utf8_lossy(&line);
            if let Some(request) = wire::parse_request_line(&text) {
                skip_headers(&mut reader)?;
                writer.write_all(wire::http_response(name, request).as_bytes())?;
                return Ok(());
            }
        }
        writer.write_all(&line)?;
    }
}

fn skip_headers(reader: &mut BufReader<TcpStream>) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        let read = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 || line == b"\r\n" || line == b"\n" {
            return Ok(());
        }
    }
}

fn echo_udp(socket: &UdpSocket) -> Result<()> {
    let mut buffer = vec![0; 65536];
    loop {
        let (len, peer) = socket
            .recv_from(&mut buffer)
            .context("receiving a datagram")?;
        if let Err(error) = socket.send_to(&buffer[..len], peer) {
            tracing::debug!(%peer, %error, "could not echo a datagram");
        }
    }
}
