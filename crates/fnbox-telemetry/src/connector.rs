//! A hyper connector whose sockets come from a pluggable factory.
//!
//! fnbox runs each instance in a network namespace of its own; a socket created inside that
//! namespace stays in it, whichever thread later connects it. The engine hands a
//! [`SocketFactory`] that creates unconnected TCP sockets inside the instance's namespace, and
//! [`Connector`] turns them into hyper connections, so `hyper_util`'s legacy client keeps its
//! keep-alive pooling. Without a factory the connector opens ordinary host sockets.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;

/// The future a [`SocketFactory`] returns.
pub type SocketFuture = Pin<Box<dyn Future<Output = io::Result<OwnedFd>> + Send>>;

/// Creates an unconnected IPv4 TCP socket (`socket(AF_INET, SOCK_STREAM)`), e.g. inside a
/// network namespace. Asynchronous because such a socket comes from another thread (the one
/// inside the namespace): the connector awaits the answer instead of parking a tokio worker.
pub type SocketFactory = Arc<dyn Fn() -> SocketFuture + Send + Sync>;

/// Maps the address a connection was meant for to the one actually dialled (host sockets
/// only), e.g. to put a recording proxy in front of an extension's listeners
/// (`fnbox test-extension`).
pub type Redirect = Arc<dyn Fn(SocketAddr) -> SocketAddr + Send + Sync>;

/// `tower_service::Service<Uri>` for hyper-util's legacy client: resolves IP literals and
/// `localhost` only when a factory is set (a namespace has nothing but loopback).
#[derive(Clone, Default)]
pub struct Connector {
    factory: Option<SocketFactory>,
    connect_timeout: Option<Duration>,
    redirect: Option<Redirect>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("factory", &self.factory.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("redirect", &self.redirect.is_some())
            .finish()
    }
}

impl Connector {
    /// Host sockets (like `HttpConnector`, TCP_NODELAY set).
    pub fn host() -> Self {
        Self::default()
    }

    /// Sockets from `factory`.
    pub fn with_factory(factory: SocketFactory) -> Self {
        Self {
            factory: Some(factory),
            connect_timeout: None,
            redirect: None,
        }
    }

    /// Dials `redirect(addr)` instead of `addr`; ignored for factory sockets (a namespace's
    /// sockets cannot reach a host-side redirect target).
    pub fn with_redirect(mut self, redirect: Option<Redirect>) -> Self {
        self.redirect = redirect;
        self
    }

    /// Limits each connection attempt.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether sockets come from a factory (an isolated instance).
    pub fn is_isolated(&self) -> bool {
        self.factory.is_some()
    }

    /// Connects a TCP stream to `addr`, through the factory when one is set.
    pub async fn connect_addr(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let attempt = async {
            let stream = match &self.factory {
                Some(factory) => {
                    let fd = factory().await?;
                    let socket =
                        tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
                    socket.connect(addr).await?
                }
                None => {
                    let addr = self.redirect.as_ref().map_or(addr, |r| r(addr));
                    tokio::net::TcpStream::connect(addr).await?
                }
            };
            let _ = stream.set_nodelay(true);
            Ok(stream)
        };
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )
            })?,
            None => attempt.await,
        }
    }

    async fn connect_uri(self, uri: http::Uri) -> io::Result<TokioIo<tokio::net::TcpStream>> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        let host = uri
            .host()
            .ok_or_else(|| invalid(format!("{uri} has no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addr = if let Ok(ip) = host.parse::<IpAddr>() {
            SocketAddr::new(ip, port)
        } else if host.eq_ignore_ascii_case("localhost") {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        } else if self.factory.is_none() {
            tokio::net::lookup_host((host, port))
                .await?
                .next()
                .ok_or_else(|| invalid(format!("{host} did not resolve")))?
        } else {
            return Err(invalid(format!(
                "{host} cannot be resolved inside the instance's network (loopback only)"
            )));
        };
        self.connect_addr(addr).await.map(TokioIo::new)
    }
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = io::Result<TokioIo<tokio::net::TcpStream>>> + Send>>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().connect_uri(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sockets come from the factory, and the legacy client still pools them: two requests,
    /// one socket.
    #[tokio::test]
    async fn factory_sockets_are_pooled_by_the_legacy_client() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let made = Arc::new(AtomicUsize::new(0));
        let counter = made.clone();
        let factory: SocketFactory = Arc::new(move || -> SocketFuture {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                // SAFETY: `into_raw_fd` gives up the socket's ownership of a valid, open
                // descriptor, so the new `OwnedFd` is its only owner (closed exactly once).
                Ok(unsafe {
                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(
                        std::os::fd::IntoRawFd::into_raw_fd(socket),
                    )
                })
            })
        });
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, http_body_util::Full<bytes::Bytes>>(Connector::with_factory(factory));
        for _ in 0..2 {
            let req = http::Request::post(format!("http://localhost:{}/", addr.port()))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        }
        assert_eq!(made.load(Ordering::SeqCst), 1, "the connection was reused");
    }

    /// A redirect sends the connection elsewhere: nothing listens at the address asked for.
    #[tokio::test]
    async fn a_redirect_dials_the_mapped_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let real = listener.local_addr().unwrap();
        let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let connector = Connector::host().with_redirect(Some(Arc::new(move |asked| {
            assert_eq!(asked, nowhere);
            real
        })));
        let stream = connector.connect_addr(nowhere).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), real);
    }

    #[tokio::test]
    async fn names_other_than_localhost_are_refused_inside_a_namespace() {
        let factory: SocketFactory =
            Arc::new(|| -> SocketFuture { Box::pin(async { Err(io::Error::other("unused")) }) });
        let err = Connector::with_factory(factory)
            .connect_uri("http://example.com:80/".parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loopback only"), "{err}");
    }
}
