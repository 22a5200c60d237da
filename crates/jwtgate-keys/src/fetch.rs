//! One HTTP(S) GET of a discovery document or a key set: bounded in time
//! (`fetch_timeout_ms`, connect to last byte) and in size, TLS verified
//! against the system's roots plus the provider's `ca_file`, no redirects
//! (a provider's endpoints do not move under a verified name; Envoy does
//! not follow them either). A fresh connection each time: fetches are
//! minutes apart.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, HOST, RETRY_AFTER, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A `Retry-After` value (RFC 9110 §10.2.3: delta-seconds or an HTTP
/// date) as a wait from `now`; `None` for what is neither.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Larger answers are refused: a key set is a few kilobytes.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an http(s) URL with a host")]
    BadUrl(String),
    /// A discovered `jwks_uri` with `user:password@` (a configured one is
    /// refused with the config).
    #[error(
        "{0:?}: a user part (user:password@host) is not supported (it is not sent as Basic \
         authentication)"
    )]
    UserPart(String),
    #[error("timed out after {0} ms")]
    Timeout(u128),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("answered {0}, not 200")]
    Status(u16),
    /// 429 or 503 with a `Retry-After` (RFC 9110 §10.2.3): the provider
    /// asks to be left alone that long.
    #[error("answered {status}, asking to be asked again in {} s (Retry-After)", wait.as_secs())]
    Busy { status: u16, wait: Duration },
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    /// `Cache-Control: max-age`, in seconds, if the answer had one.
    pub max_age: Option<u64>,
}

/// Makes GETs for one provider (its trust anchors).
#[derive(Clone)]
pub struct Fetcher {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

/// The system's trust anchors, read once per process.
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a system CA certificate could not be read");
        }
        found.certs
    })
}

impl Fetcher {
    /// `ca_pem`: extra trust anchors (PEM) beside the system's.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Fetcher, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        let (_, _) = roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(pem) = ca_pem {
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| FetchError::Tls(format!("ca_file: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| FetchError::Tls(format!("ca_file: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GET `url`; the whole exchange within the fetch timeout.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.timeout, self.get_unbounded(url))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout.as_millis()))?
    }

    async fn get_unbounded(&self, url: &str) -> Result<Fetched, FetchError> {
        let bad = || FetchError::BadUrl(jwtgate_core::redact::url_for_display(url));
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?.clone();
        if authority.as_str().contains('@') {
            return Err(FetchError::UserPart(jwtgate_core::redact::url_for_display(
                url,
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let request = Request::get(target)
            .header(HOST, authority.as_str())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .header(USER_AGENT, concat!("jwtgate/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if tls {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            exchange(TokioIo::new(stream), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

async fn exchange<I>(io: I, request: Request<Empty<Bytes>>) -> Result<Fetched, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| FetchError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let conn = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(http);
    let result = async {
        let response = response?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let wait = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, std::time::SystemTime::now()));
            if let Some(wait) = wait {
                return Err(FetchError::Busy {
                    status: status.as_u16(),
                    wait,
                });
            }
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max_age = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::TooLarge
                } else {
                    FetchError::Http(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Fetched { body, max_age })
    }
    .await;
    conn.abort();
    result
}

/// The `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count
/// as 0: refresh as soon as allowed).
fn max_age(value: &str) -> Option<u64> {
    value.split(',').find_map(|directive| {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(0);
        }
        let (name, v) = directive.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("max-age=\"30\", must-revalidate"), Some(30));
        assert_eq!(max_age("MAX-AGE = 7"), Some(7));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // 2027-01-15T08:00:30Z is 1_800_000_030.
        assert_eq!(
            retry_after("Fri, 15 Jan 2027 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Fri, 15 Jan 2027 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    /// Refused before any connection, each saying why, a secret never shown.
    #[tokio::test]
    async fn urls_a_fetch_refuses_say_why() {
        let fetcher = Fetcher::new(None, Duration::from_secs(1)).expect("fetcher");
        let user = fetcher.get("http://user:pw5ecret@127.0.0.1:1/keys").await;
        let Err(e) = user else { panic!("fetched") };
        assert_eq!(
            e.to_string(),
            "\"http://***@127.0.0.1:1/keys\": a user part (user:password@host) is not supported \
             (it is not sent as Basic authentication)"
        );
        let ftp = fetcher.get("ftp://127.0.0.1:1/keys").await;
        assert!(matches!(ftp, Err(FetchError::BadUrl(_))), "{ftp:?}");
    }
}
