//! Calling a function: one unary gRPC call per step run, with a connect timeout, a call timeout
//! and bounded message sizes, over plain HTTP/2 (`--insecure` functions) or mTLS.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto::{RunFunctionRequest, RunFunctionResponse};

/// The largest request or response accepted (Crossplane's function servers allow 4 MiB by
/// default; a larger message is an error naming the function, never a truncated state).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Why one call to a function failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No endpoint is known for the function; holds its name.
    #[error("no Function named {0:?} is known (no functions file entry or Function object)")]
    UnknownFunction(String),
    /// The endpoint's address or TLS material is unusable.
    #[error("invalid address {address:?}: {message}")]
    Address {
        /// The endpoint's `host:port`.
        address: String,
        /// What is wrong.
        message: String,
    },
    /// The connection failed (refused, TLS handshake failed).
    #[error("cannot reach {address}: {message}")]
    Unreachable {
        /// The endpoint's `host:port`.
        address: String,
        /// Why.
        message: String,
    },
    /// The function did not answer within the call timeout.
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// The endpoint's `host:port`.
        address: String,
        /// The call timeout.
        timeout: Duration,
    },
    /// The function answered with a gRPC error status.
    #[error("{address} answered {code}: {message}")]
    Status {
        /// The endpoint's `host:port`.
        address: String,
        /// The gRPC status code's name (`Unimplemented`).
        code: String,
        /// The status message.
        message: String,
    },
}

/// Runs one function. Implemented over gRPC by [`GrpcFunctions`]; tests may script it.
pub trait FunctionRunner: Send + Sync {
    /// Calls the Function named `function` once with `request`.
    fn run(
        &self,
        function: &str,
        request: RunFunctionRequest,
    ) -> impl Future<Output = Result<RunFunctionResponse, CallError>> + Send;
}

/// Which copy of the protocol a function serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// `apiextensions.fn.proto.v1`; a function that answers `Unimplemented` is asked again
    /// over `v1beta1`, as Crossplane does.
    #[default]
    V1,
    /// `apiextensions.fn.proto.v1beta1` only.
    V1Beta1,
}

impl ProtocolVersion {
    fn path(self) -> &'static str {
        match self {
            Self::V1 => "/apiextensions.fn.proto.v1.FunctionRunnerService/RunFunction",
            Self::V1Beta1 => "/apiextensions.fn.proto.v1beta1.FunctionRunnerService/RunFunction",
        }
    }
}

/// Client certificates for mTLS: PEM.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA the server's certificate must chain to.
    pub ca: Vec<u8>,
    /// The client certificate presented to the function.
    pub cert: Vec<u8>,
    /// The client certificate's private key.
    pub key: Vec<u8>,
    /// The name the server's certificate is checked against.
    pub server_name: String,
}

/// Where one function listens.
#[derive(Clone, Debug)]
pub struct FunctionEndpoint {
    /// `host:port`.
    pub address: String,
    /// `None`: plain HTTP/2 (the function runs with `--insecure`).
    pub tls: Option<ClientTls>,
    /// The protocol version tried first.
    pub protocol: ProtocolVersion,
}

/// Functions reached by address, one lazily connected channel each.
#[derive(Clone, Debug)]
pub struct GrpcFunctions {
    /// Each endpoint, its channel, and whether it turned out to serve only `v1beta1`.
    endpoints: BTreeMap<String, (FunctionEndpoint, Channel, Arc<AtomicBool>)>,
    timeout: Duration,
}

impl GrpcFunctions {
    /// `timeout` bounds each call (connect included).
    pub fn new(
        endpoints: BTreeMap<String, FunctionEndpoint>,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let mut out = BTreeMap::new();
        for (name, ep) in endpoints {
            let channel = channel(&ep, timeout)?;
            let beta = Arc::new(AtomicBool::new(ep.protocol == ProtocolVersion::V1Beta1));
            out.insert(name, (ep, channel, beta));
        }
        Ok(Self {
            endpoints: out,
            timeout,
        })
    }
}

fn channel(ep: &FunctionEndpoint, timeout: Duration) -> Result<Channel, CallError> {
    let address_err = |message: String| CallError::Address {
        address: ep.address.clone(),
        message,
    };
    let scheme = if ep.tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", ep.address))
        .map_err(|e| address_err(e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(timeout);
    if let Some(tls) = &ep.tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca))
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .domain_name(tls.server_name.clone());
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| address_err(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

impl FunctionRunner for GrpcFunctions {
    async fn run(
        &self,
        function: &str,
        request: RunFunctionRequest,
    ) -> Result<RunFunctionResponse, CallError> {
        let Some((ep, channel, beta)) = self.endpoints.get(function) else {
            return Err(CallError::UnknownFunction(function.to_owned()));
        };
        let protocol = if beta.load(Ordering::Relaxed) {
            ProtocolVersion::V1Beta1
        } else {
            ProtocolVersion::V1
        };
        // As Crossplane: a function that does not implement v1 is asked again over v1beta1
        // (the same messages), and asked that way from then on.
        match self.call(ep, channel, protocol, request.clone()).await {
            Err(CallError::Status { code, .. })
                if code == "Unimplemented" && protocol == ProtocolVersion::V1 =>
            {
                let rsp = self
                    .call(ep, channel, ProtocolVersion::V1Beta1, request)
                    .await?;
                beta.store(true, Ordering::Relaxed);
                Ok(rsp)
            }
            other => other,
        }
    }
}

impl GrpcFunctions {
    async fn call(
        &self,
        ep: &FunctionEndpoint,
        channel: &Channel,
        protocol: ProtocolVersion,
        request: RunFunctionRequest,
    ) -> Result<RunFunctionResponse, CallError> {
        let address = ep.address.clone();
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let call = async {
            grpc.ready().await.map_err(|e| CallError::Unreachable {
                address: address.clone(),
                message: source_chain(&e),
            })?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(protocol.path());
            let codec = tonic_prost::ProstCodec::default();
            grpc.unary(tonic::Request::new(request), path, codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status_error(&address, status, self.timeout))
        };
        // The channel's timeout covers the call; this one covers a connect that never completes.
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), call).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout {
                address,
                timeout: self.timeout,
            }),
        }
    }
}

fn status_error(address: &str, status: tonic::Status, timeout: Duration) -> CallError {
    let message = status.message().to_owned();
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled if message.contains("Timeout") => {
            CallError::Timeout {
                address: address.to_owned(),
                timeout,
            }
        }
        tonic::Code::Unavailable => CallError::Unreachable {
            address: address.to_owned(),
            message: if message.is_empty() {
                "unavailable".to_owned()
            } else {
                message
            },
        },
        code => CallError::Status {
            address: address.to_owned(),
            code: format!("{code:?}"),
            message,
        },
    }
}

/// An error and its sources on one line.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use function_sdk_rust::proto::v1::function_runner_service_server::{
        FunctionRunnerService, FunctionRunnerServiceServer,
    };
    use function_sdk_rust::response;

    use super::*;

    /// A function written with function-sdk-rust, served over real gRPC on a loopback port.
    struct Function {
        delay: Duration,
        /// Pads the response with this many bytes in its context.
        pad: usize,
    }

    #[tonic::async_trait]
    impl FunctionRunnerService for Function {
        async fn run_function(
            &self,
            request: tonic::Request<RunFunctionRequest>,
        ) -> Result<tonic::Response<RunFunctionResponse>, tonic::Status> {
            tokio::time::sleep(self.delay).await;
            let req = request.into_inner();
            let mut rsp = response::to(&req, Duration::from_secs(60));
            if self.pad > 0 {
                response::set_context_key(&mut rsp, "pad", &"x".repeat(self.pad)).unwrap();
            }
            response::normal(&mut rsp, "served");
            Ok(tonic::Response::new(rsp))
        }
    }

    async fn serve(function: Function) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(
                    FunctionRunnerServiceServer::new(function)
                        .max_encoding_message_size(usize::MAX),
                )
                .serve_with_incoming(incoming)
                .await;
        });
        (address, task)
    }

    fn runner(address: &str, timeout: Duration) -> GrpcFunctions {
        GrpcFunctions::new(
            BTreeMap::from([(
                "f".to_owned(),
                FunctionEndpoint {
                    address: address.to_owned(),
                    tls: None,
                    protocol: ProtocolVersion::V1,
                },
            )]),
            timeout,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_function_answers_over_grpc() {
        let (address, task) = serve(Function {
            delay: Duration::ZERO,
            pad: 0,
        })
        .await;
        let rsp = runner(&address, Duration::from_secs(5))
            .run("f", RunFunctionRequest::default())
            .await
            .unwrap();
        assert_eq!(rsp.results[0].message, "served");
        task.abort();
    }

    #[tokio::test]
    async fn a_slow_function_times_out_with_its_address() {
        let (address, task) = serve(Function {
            delay: Duration::from_secs(30),
            pad: 0,
        })
        .await;
        let err = runner(&address, Duration::from_millis(300))
            .run("f", RunFunctionRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            CallError::Timeout {
                address: address.clone(),
                timeout: Duration::from_millis(300)
            }
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_function_that_is_not_listening_is_unreachable_not_a_hang() {
        let address = strata_test_support::free_addr().to_string();
        let err = runner(&address, Duration::from_secs(5))
            .run("f", RunFunctionRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Unreachable { address: a, .. } if *a == address),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_oversized_response_is_an_error_not_a_truncated_state() {
        let (address, task) = serve(Function {
            delay: Duration::ZERO,
            pad: MAX_MESSAGE_BYTES + 1,
        })
        .await;
        let err = runner(&address, Duration::from_secs(10))
            .run("f", RunFunctionRequest::default())
            .await
            .unwrap_err();
        let CallError::Status { code, message, .. } = &err else {
            panic!("a status error expected: {err}");
        };
        assert_eq!(code, "OutOfRange", "{message}");
        assert!(message.contains("message length too large"), "{message}");
        task.abort();
    }
}
