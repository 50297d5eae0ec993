//! Connections to the API, from the TCP accept to the close: how many may be open, and how long
//! a client may take to send a request or keep a connection idle. Slow or idle sockets are
//! closed, so they cannot lock real clients out.
//!
//! - **Bounds.** A connection over the bound of open connections from its client address, or
//!   over the bound for all clients, is closed at once, before the TLS handshake, with a warning
//!   naming the address and the bound ([`admit`]), at most one a second (with the count of
//!   those not logged), so a client hammering the server cannot flood the log.
//! - **TLS handshake** within [`TLS_HANDSHAKE_TIMEOUT`].
//! - **Request headers** within `request_header_timeout`, counted from the end of the TLS
//!   handshake for a connection's first request and from the first byte of each later one
//!   (kube-apiserver: 32 s, Go's `ReadHeaderTimeout`). A client sending headers a byte at a time
//!   is dropped.
//! - **Idle keep-alive**: a connection with no request in flight and no byte received for
//!   `idle_timeout` is closed (kube-apiserver: 90 s, Go's `IdleTimeout`).
//!
//! Why not hyper's own `header_read_timeout`: hyper runs that timer whenever it waits for a
//! request head, including the wait between keep-alive requests, so one timer would be both the
//! header and the idle timeout. Instead each connection has a supervisor that sees the
//! connection's reads (an I/O wrapper) and its requests in flight (a guard carried by each
//! response body until hyper has sent it), and closes the connection at the deadline
//! [`deadline`] computes from that [`Phase`]. A watch is a request in flight, however quiet.
//!
//! On loopback every local user shares one client address, so the per-client bound protects the
//! server from one runaway client, not one local user from another; the timeouts are what free
//! the sockets.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::client_cert::ClientIdentity;

/// How long a client has to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection bounds and timeouts, validated by [`Limits::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's headers (kube-apiserver: 32 s).
    pub request_header_timeout: Duration,
    /// Time a keep-alive connection may stay open with no request (kube-apiserver: 90 s).
    pub idle_timeout: Duration,
    /// Open connections from one client address.
    pub max_connections_per_client: usize,
    /// Open connections from all clients.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_header_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            // Strata's own controllers hold one connection per watch, all from one address.
            max_connections_per_client: 512,
            max_connections: 2048,
        }
    }
}

/// Why connection [`Limits`] are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    /// A timeout or bound is zero, which would refuse or drop every connection.
    #[error("connection limits: {field} must be greater than zero")]
    Zero {
        /// The limit, as the error message names it.
        field: &'static str,
    },
    /// The per-client bound exceeds the overall one, so it could never apply.
    #[error(
        "connection limits: max connections per client ({per_client}) exceeds max connections ({total})"
    )]
    PerClientAboveTotal {
        /// The per-client bound.
        per_client: usize,
        /// The overall bound.
        total: usize,
    },
}

impl Limits {
    /// Checks the limits before a server starts: every value non-zero and the per-client bound
    /// within the overall one. The error names the offending limit.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let zero = |field| Err(LimitsError::Zero { field });
        if self.request_header_timeout.is_zero() {
            return zero("request header timeout");
        }
        if self.idle_timeout.is_zero() {
            return zero("idle connection timeout");
        }
        if self.max_connections_per_client == 0 {
            return zero("max connections per client");
        }
        if self.max_connections == 0 {
            return zero("max connections");
        }
        if self.max_connections_per_client > self.max_connections {
            return Err(LimitsError::PerClientAboveTotal {
                per_client: self.max_connections_per_client,
                total: self.max_connections,
            });
        }
        Ok(())
    }
}

/// Open connections, in total and per client address.
#[derive(Debug, Default)]
pub struct OpenConnections {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Whether a new connection from a client may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it; both bounds have room.
    Admit,
    /// The client already has this many open connections, the per-client bound.
    RefuseClient {
        /// The client's open connections.
        open: usize,
    },
    /// All clients have this many open connections, the overall bound.
    RefuseTotal {
        /// The open connections in total.
        open: usize,
    },
}

/// Decides on a new connection from `client`, given what is open.
pub fn admit(open: &OpenConnections, client: IpAddr, limits: &Limits) -> Admission {
    let from_client = open.per_client.get(&client).copied().unwrap_or(0);
    if from_client >= limits.max_connections_per_client {
        Admission::RefuseClient { open: from_client }
    } else if open.total >= limits.max_connections {
        Admission::RefuseTotal { open: open.total }
    } else {
        Admission::Admit
    }
}

/// A counted open connection; uncounted when dropped.
struct Slot {
    open: Arc<Mutex<OpenConnections>>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// Counts the connection from `client` when it is admitted.
fn take_slot(
    open: &Arc<Mutex<OpenConnections>>,
    client: IpAddr,
    limits: &Limits,
) -> Result<Slot, Admission> {
    let mut counts = open.lock().unwrap_or_else(PoisonError::into_inner);
    match admit(&counts, client, limits) {
        Admission::Admit => {
            counts.total += 1;
            *counts.per_client.entry(client).or_insert(0) += 1;
            Ok(Slot {
                open: open.clone(),
                client,
            })
        }
        refused => Err(refused),
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// At least one request is being served (its head was read, its response not yet sent).
    Serving,
    /// Waiting for a request head since `since`; `first_byte` is when its first byte arrived.
    Waiting {
        /// When the connection was accepted or its last response was sent.
        since: Instant,
        /// When the next request's first byte arrived, if it has.
        first_byte: Option<Instant>,
        /// Whether no request was served yet: a new connection gets the header timeout, not the
        /// idle one.
        first_request: bool,
    },
}

/// Why a connection was closed by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head did not arrive in full within the request-header timeout.
    HeaderTimeout,
    /// No request started within the idle timeout after the previous response.
    IdleTimeout,
}

/// When a connection in `phase` is to be closed, and why; `None` while a request is served.
pub fn deadline(phase: Phase, limits: &Limits) -> Option<(Instant, Expiry)> {
    match phase {
        Phase::Serving => None,
        Phase::Waiting {
            first_byte: Some(t),
            ..
        } => Some((t + limits.request_header_timeout, Expiry::HeaderTimeout)),
        Phase::Waiting {
            since,
            first_byte: None,
            first_request: true,
        } => Some((since + limits.request_header_timeout, Expiry::HeaderTimeout)),
        Phase::Waiting {
            since,
            first_byte: None,
            first_request: false,
        } => Some((since + limits.idle_timeout, Expiry::IdleTimeout)),
    }
}

/// A connection's phase, updated by its reads and its requests, watched by its supervisor.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    phase: Phase,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                phase: Phase::Waiting {
                    since: Instant::now(),
                    first_byte: None,
                    first_request: true,
                },
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn phase(&self) -> Phase {
        self.lock().phase
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if let Phase::Waiting {
            first_byte: first_byte @ None,
            ..
        } = &mut state.phase
        {
            *first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.phase = Phase::Serving;
        drop(state);
        self.changed.notify_one();
        InFlight(self.clone())
    }
}

/// A request in flight on a connection, until its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.phase = Phase::Waiting {
                since: Instant::now(),
                first_byte: None,
                first_request: false,
            };
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The stream of one connection, reporting reads to its [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves when the connection in `activity` passes its deadline, with the reason.
async fn expired(activity: &Activity, limits: &Limits) -> Expiry {
    loop {
        let changed = activity.changed.notified();
        match deadline(activity.phase(), limits) {
            None => changed.await,
            Some((at, why)) => {
                if Instant::now() >= at {
                    return why;
                }
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
        }
    }
}

/// Serves `app` over TLS on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets every connection finish its requests, and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    // Every connection holds a receiver: the sender sees them all gone once the last closes.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refusals = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, most likely: wait for connections to close.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match take_slot(&open, peer.ip(), &limits) {
            Ok(slot) => slot,
            Err(refused) => {
                drop(tcp);
                refusals.record(peer, refused, &limits);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            acceptor: acceptor.clone(),
            app: app.clone(),
            limits,
            peer,
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            connection.run(tcp).await;
            drop(slot);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(stop_rx);
    stop_tx.closed().await;
}

/// Logs refused connections at most once a second, counting those not logged.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn record(&mut self, peer: SocketAddr, refused: Admission, limits: &Limits) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        self.last = Some(now);
        let unlogged = std::mem::take(&mut self.unlogged);
        match refused {
            Admission::RefuseClient { open } => tracing::warn!(
                client = %peer.ip(),
                open,
                limit = limits.max_connections_per_client,
                refused_since_last_warning = unlogged,
                "refusing a connection: too many open connections from this client address"
            ),
            Admission::RefuseTotal { open } => tracing::warn!(
                client = %peer.ip(),
                open,
                limit = limits.max_connections,
                refused_since_last_warning = unlogged,
                "refusing a connection: too many open connections"
            ),
            Admission::Admit => {}
        }
    }
}

/// One admitted connection.
struct Connection {
    acceptor: TlsAcceptor,
    app: axum::Router,
    limits: Limits,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream) {
        let peer = self.peer;
        let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake with {peer} timed out");
                return;
            }
        };
        let identity = ClientIdentity::of(tls.get_ref().1);
        let activity = Activity::new();
        let service = {
            let activity = activity.clone();
            let app = hyper_util::service::TowerToHyperService::new(self.app.clone());
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(identity.clone());
                let in_flight = activity.request_started();
                let response = hyper::service::Service::call(&app, req.map(Body::new));
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|inner| {
                        Body::new(TrackedBody {
                            inner,
                            _in_flight: in_flight,
                        })
                    }))
                }
            })
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let io = TokioIo::new(Watched {
            inner: tls,
            activity: activity.clone(),
        });
        if h2 {
            // HTTP/2, as client-go prefers when the server offers it (ALPN `h2`); the same
            // supervisor times the connection out between requests.
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service);
            tokio::pin!(conn);
            self.supervise(conn, |c| c.graceful_shutdown(), &activity)
                .await;
        } else {
            let conn = hyper::server::conn::http1::Builder::new()
                // The supervisor below times headers out; hyper's timer would also cut idle
                // keep-alive connections at the header timeout.
                .header_read_timeout(None)
                .serve_connection(io, service)
                .with_upgrades();
            tokio::pin!(conn);
            self.supervise(conn, |c| c.graceful_shutdown(), &activity)
                .await;
        }
    }

    /// Drives a connection until it ends, its activity expires or the server stops (then it
    /// is shut down gracefully with `shutdown`: its requests finish, no new ones start).
    async fn supervise<C, E>(
        &mut self,
        mut conn: Pin<&mut C>,
        shutdown: fn(Pin<&mut C>),
        activity: &Activity,
    ) where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let peer = self.peer;
        let expired = expired(activity, &self.limits);
        tokio::pin!(expired);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("serving the connection from {peer}: {e}");
                    }
                    return;
                }
                why = &mut expired => {
                    match why {
                        Expiry::HeaderTimeout => tracing::info!(
                            client = %peer,
                            timeout_seconds = self.limits.request_header_timeout.as_secs_f64(),
                            "closing a connection: request headers not received in time"
                        ),
                        Expiry::IdleTimeout => tracing::debug!(
                            client = %peer,
                            "closing an idle keep-alive connection"
                        ),
                    }
                    return;
                }
                changed = self.stop.changed(), if !stopping => {
                    if changed.is_err() || *self.stop.borrow() {
                        stopping = true;
                        shutdown(conn.as_mut());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request_header_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            max_connections_per_client: 2,
            max_connections: 3,
        }
    }

    #[test]
    fn connections_are_admitted_up_to_the_per_client_and_the_overall_bound() {
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let c: IpAddr = [127, 0, 0, 3].into();
        let open = |total, per: &[(IpAddr, usize)]| OpenConnections {
            total,
            per_client: per.iter().copied().collect(),
        };
        let cases = [
            (open(0, &[]), a, Admission::Admit, "nothing open"),
            (open(1, &[(a, 1)]), a, Admission::Admit, "under both bounds"),
            (
                open(2, &[(a, 2)]),
                a,
                Admission::RefuseClient { open: 2 },
                "the client is at its bound",
            ),
            (
                open(2, &[(a, 2)]),
                b,
                Admission::Admit,
                "another client is not held to the first one's bound",
            ),
            (
                open(3, &[(a, 2), (b, 1)]),
                c,
                Admission::RefuseTotal { open: 3 },
                "all clients together are at the overall bound",
            ),
        ];
        for (open, client, want, reason) in cases {
            assert_eq!(admit(&open, client, &limits()), want, "{reason}");
        }
    }

    #[test]
    fn a_closed_connection_frees_its_slot_for_the_same_client() {
        let open = Arc::new(Mutex::new(OpenConnections::default()));
        let a: IpAddr = [127, 0, 0, 1].into();
        let first = take_slot(&open, a, &limits()).unwrap();
        let _second = take_slot(&open, a, &limits()).unwrap();
        assert!(take_slot(&open, a, &limits()).is_err());
        drop(first);
        assert!(take_slot(&open, a, &limits()).is_ok());
    }

    #[test]
    fn the_deadline_is_the_header_timeout_while_a_head_is_awaited_and_the_idle_timeout_between_requests()
     {
        let l = limits();
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let cases = [
            (
                Phase::Serving,
                None,
                "a request in flight (a watch) never expires",
            ),
            (
                Phase::Waiting {
                    since: t,
                    first_byte: None,
                    first_request: true,
                },
                Some((t + l.request_header_timeout, Expiry::HeaderTimeout)),
                "the first request's headers are due from the accept",
            ),
            (
                Phase::Waiting {
                    since: t,
                    first_byte: None,
                    first_request: false,
                },
                Some((t + l.idle_timeout, Expiry::IdleTimeout)),
                "an idle keep-alive connection waits the idle timeout",
            ),
            (
                Phase::Waiting {
                    since: t,
                    first_byte: Some(later),
                    first_request: false,
                },
                Some((later + l.request_header_timeout, Expiry::HeaderTimeout)),
                "once a request's first byte arrives, its headers are due within the header timeout",
            ),
        ];
        for (phase, want, reason) in cases {
            assert_eq!(deadline(phase, &l), want, "{reason}");
        }
    }

    #[test]
    fn limits_with_a_zero_or_a_per_client_bound_above_the_total_are_rejected() {
        let mut l = limits();
        assert_eq!(l.validate(), Ok(()));
        l.idle_timeout = Duration::ZERO;
        assert_eq!(
            l.validate(),
            Err(LimitsError::Zero {
                field: "idle connection timeout"
            })
        );
        let mut l = limits();
        l.max_connections_per_client = 4;
        assert_eq!(
            l.validate(),
            Err(LimitsError::PerClientAboveTotal {
                per_client: 4,
                total: 3
            })
        );
    }
}
