//! HTTPS and TURN over TLS on one port (443): a network that lets only TCP 443 out still
//! reaches the relay. Each connection's TLS is ended here; then ALPN `stun.turn` (RFC 7443), or
//! a first byte that starts a STUN message (HTTP/1 starts with a letter), sends it to the TURN
//! relay, and everything else goes to the same actix-web app the other listeners serve, with
//! the client's address kept.

use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::{HttpService, Protocol, Request, Response};
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_factory, fn_service,
    map_config,
};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::turn::{self, TurnServer};

/// ALPN a TURN client may offer for TURN over TLS (RFC 7443).
pub const TURN_ALPN: &[u8] = b"stun.turn";
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// After the handshake, the first byte must come within this (browsers send at once).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` with TLS `config`: HTTP to the app made by `app`, TURN to `relay`.
/// The bounds are actix-web's `HttpServer`'s: the same app factory serves both.
pub fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    mut config: rustls::ServerConfig,
    app: F,
    relay: Arc<TurnServer>,
    workers: usize,
    shutdown: CancellationToken,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    // HTTP/2 and HTTP/1.1 first, as actix offers them; then what the TLS side asked for (the
    // ACME challenge's protocol), then TURN.
    let mut alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    alpn.extend(config.alpn_protocols.iter().cloned());
    alpn.push(TURN_ALPN.to_vec());
    config.alpn_protocols = alpn;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    Ok(Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(10)
        .listen("https-and-turn", listener, move || {
            let http = HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .finish(map_config(
                    app()
                        .into_factory()
                        .map_err(|e: S::Error| e.into().error_response()),
                    // What actix-web's HttpServer gives a TLS listener (its constructor is
                    // crate-private; this one is public for actix-test).
                    move |_| AppConfig::__priv_test_new(true, addr.to_string(), addr),
                ));
            let acceptor = acceptor.clone();
            let relay = Arc::clone(&relay);
            let shutdown = shutdown.clone();
            fn_factory(move || {
                let http = http.new_service(());
                let acceptor = acceptor.clone();
                let relay = Arc::clone(&relay);
                let shutdown = shutdown.clone();
                async move {
                    let http = Rc::new(http.await.map_err(|_| ())?);
                    Ok::<_, ()>(fn_service(move |tcp: TcpStream| {
                        let http = Rc::clone(&http);
                        let acceptor = acceptor.clone();
                        let relay = Arc::clone(&relay);
                        let shutdown = shutdown.clone();
                        async move {
                            connection(tcp, acceptor, relay, shutdown, |io, proto, peer| {
                                http.call((io, proto, peer))
                            })
                            .await;
                            Ok::<_, ()>(())
                        }
                    }))
                }
            })
        })?
        .run())
}

/// One connection: TLS, then HTTP or TURN.
async fn connection<H, Fut>(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    relay: Arc<TurnServer>,
    shutdown: CancellationToken,
    http: H,
) where
    H: FnOnce(Sniffed, Protocol, Option<SocketAddr>) -> Fut,
    Fut: std::future::Future,
{
    let _ = tcp.set_nodelay(true);
    let Ok(peer) = tcp.peer_addr() else {
        return;
    };
    let Ok(Ok(mut tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
    else {
        return;
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        Some(b"h2") => {
            let _ = http(Sniffed::new(tls, Vec::new()), Protocol::Http2, Some(peer)).await;
        }
        Some(TURN_ALPN) => turn::serve_stream(relay, tls, peer, Vec::new(), shutdown).await,
        // The ACME TLS-ALPN-01 check ends with the handshake.
        Some(b"acme-tls/1") => {}
        _ => {
            let mut first = [0u8; 1];
            let Ok(Ok(1)) = tokio::time::timeout(FIRST_BYTE_TIMEOUT, tls.read(&mut first)).await
            else {
                return;
            };
            if first[0] >> 6 == 0 {
                turn::serve_stream(relay, tls, peer, first.to_vec(), shutdown).await;
            } else {
                let _ = http(
                    Sniffed::new(tls, first.to_vec()),
                    Protocol::Http1,
                    Some(peer),
                )
                .await;
            }
        }
    }
}

/// A stream whose first bytes were read to tell one protocol from another (here a TLS stream,
/// HTTP from TURN): they are read again first.
pub struct Sniffed<S = TlsStream<TcpStream>> {
    inner: S,
    head: Vec<u8>,
    at: usize,
}

impl<S> Sniffed<S> {
    /// `inner`, with `head` (what was read off it) given back first.
    pub fn new(inner: S, head: Vec<u8>) -> Self {
        Sniffed { inner, head, at: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = (this.head.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                // Given back whole: the connection keeps no copy.
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
