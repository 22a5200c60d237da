//! A real OpenID provider for tests: panva's `oidc-provider` (npm, unmodified)
//! run by `testdata/oidc/provider.mjs` under Node.js, on a loopback port,
//! killed on drop. It serves discovery, a JWK Set, JWT access tokens by the
//! `client_credentials` grant with a resource indicator (RFC 8707), and OIDC
//! Back-Channel Logout, which tests trigger with
//! [`OidcProvider::trigger_backchannel_logout`].
//!
//! HTTP calls to the provider (tokens, discovery, the logout trigger) go
//! through `node testdata/oidc/http.mjs`, so the testkit needs no HTTP client
//! crate. A missing `node` or missing `testdata/oidc/node_modules` is a loud
//! panic that says how to install them: tests that need the provider never
//! skip. `JWTGATE_NODE` names another `node` binary (e.g. to run under
//! Node.js 18).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// How long the provider may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one `node` helper run (an HTTP call or key generation).
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// The HTTP timeout `http.mjs` is given, inside [`HELPER_TIMEOUT`].
const HTTP_TIMEOUT_MS: u64 = 15_000;
/// Kept of the provider's stderr, for failure messages.
const STDERR_CAP: usize = 256 * 1024;

pub const DEFAULT_CLIENT_ID: &str = "jwtgate-test";
pub const DEFAULT_CLIENT_SECRET: &str = "jwtgate-test-secret-0123456789abcdef";
pub const DEFAULT_RESOURCE: &str = "https://api.example.test/orders";
/// The `events` member of every logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `testdata/oidc`: the Node.js fixture.
pub fn fixture_dir() -> PathBuf {
    repo_root().join("testdata/oidc")
}

/// The CA that issued `testdata/tls/server.crt` (valid for 127.0.0.1 and
/// localhost), which the provider serves with `tls: true`.
pub fn test_ca_file() -> PathBuf {
    repo_root().join("testdata/tls/ca.crt")
}

fn install_hint() -> String {
    format!(
        "Install Node.js 18 or later and the fixture's packages: apt-get install -y nodejs npm && npm ci --prefix {}",
        fixture_dir().display()
    )
}

/// The `node` binary (`$JWTGATE_NODE`, else `node` on PATH), after checking
/// that the fixture's packages are installed. Panics with the install
/// command otherwise.
pub fn node() -> PathBuf {
    let node = match std::env::var_os("JWTGATE_NODE") {
        Some(n) => PathBuf::from(n),
        None => std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("node"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "node not found on PATH: these tests need a real OpenID provider (oidc-provider on Node.js). {}",
                    install_hint()
                )
            }),
    };
    let package = fixture_dir().join("node_modules/oidc-provider/package.json");
    assert!(
        package.is_file(),
        "{} is missing: the OpenID provider fixture's packages are not installed. Run: npm ci --prefix {}",
        package.display(),
        fixture_dir().display()
    );
    node
}

/// Runs `node testdata/oidc/<script> args...`, bounded by [`HELPER_TIMEOUT`].
fn run_script(script: &str, args: &[String]) -> Output {
    let mut child = Command::new(node())
        .arg(fixture_dir().join(script))
        .args(args)
        .current_dir(fixture_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start node {script}: {e}. {}", install_hint()));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {script} {args:?} did not finish within {HELPER_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Writes a private JWK Set (`{"keys":[...]}`) for [`OidcOptions::keys_file`]
/// with one fresh key per `(alg, kid)`: RS256/384/512 and PS256/384/512 (RSA
/// 2048), ES256, ES384, ES512, EdDSA (Ed25519). Each key carries `kid`, `alg`
/// and `use: "sig"`. The provider signs with the first key that fits an
/// algorithm (unless [`OidcOptions::signing_kid`] says otherwise).
pub fn generate_keys(path: &Path, keys: &[(&str, &str)]) {
    assert!(!keys.is_empty(), "generate_keys: no key requested");
    let mut args = Vec::new();
    for (alg, kid) in keys {
        args.push("--key".to_owned());
        args.push(format!("{alg}:{kid}"));
    }
    args.push("--out".to_owned());
    args.push(path.display().to_string());
    let out = run_script("genkeys.mjs", &args);
    assert!(
        out.status.success(),
        "genkeys.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The public JWK Set of a private set written by [`generate_keys`] (for a
/// `jwks_file`).
pub fn public_keys(private_set: &Path) -> Value {
    let text = std::fs::read_to_string(private_set)
        .unwrap_or_else(|e| panic!("read {}: {e}", private_set.display()));
    let mut set: Value = serde_json::from_str(&text).expect("a JWK Set");
    if let Some(keys) = set.get_mut("keys").and_then(Value::as_array_mut) {
        for key in keys.iter_mut().filter_map(Value::as_object_mut) {
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                key.remove(private);
            }
        }
    }
    set
}

/// A JWT's header and payload, decoded without any verification.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = |what: &str| -> Value {
        let seg = parts
            .next()
            .unwrap_or_else(|| panic!("not a JWT (no {what}): {token}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap_or_else(|e| panic!("JWT {what} is not base64url ({e}): {token}"));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("JWT {what} is not JSON ({e}): {token}"))
    };
    let header = part("header");
    let payload = part("payload");
    (header, payload)
}

/// How to run the provider: each field is a flag of `provider.mjs` (see
/// `testdata/oidc/README.md`).
#[derive(Clone, Debug)]
pub struct OidcOptions {
    /// 0: a port the kernel picks. Give a former provider's port to restart
    /// "the same" IdP, e.g. with another key set.
    pub port: u16,
    /// Default: the listening origin (`http://127.0.0.1:PORT`, or https).
    /// `{port}` is replaced by the bound port, e.g.
    /// `https://localhost:{port}/realms/main`; a path is served as a prefix.
    pub issuer: Option<String>,
    /// HTTPS with `testdata/tls/server.{crt,key}` (trust [`test_ca_file`]).
    pub tls: bool,
    /// A private JWK Set (see [`generate_keys`]). None: fresh keys at start.
    pub keys_file: Option<PathBuf>,
    /// The `alg` of access tokens.
    pub access_token_alg: String,
    /// The client's `id_token_signed_response_alg`: the `alg` of logout tokens.
    pub id_token_alg: String,
    /// The `kid` that signs access tokens (default: the first key that fits).
    pub signing_kid: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// `client_secret_post` instead of `client_secret_basic` at /token.
    pub client_secret_post: bool,
    /// The default resource indicator; its tokens get `aud` = `audience`.
    pub resource: String,
    /// Default: `resource`.
    pub audience: Option<String>,
    /// The client's `backchannel_logout_uri` (with
    /// `backchannel_logout_session_required: true`).
    pub backchannel_logout_uri: Option<String>,
    /// How long the provider waits for the answer to a logout token POST.
    pub backchannel_timeout_ms: u64,
    /// Access token lifetime (`exp - iat`).
    pub access_token_ttl: u64,
    /// `realm_access.roles` in every access token (none when empty).
    pub roles: Vec<String>,
    /// `sub` of every access token (oidc-provider's default: the client id).
    pub sub: Option<String>,
    /// `sid` of every access token.
    pub sid: Option<String>,
    /// Claims merged last into every access token (a `null` removes one).
    pub claims: Option<Value>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        OidcOptions {
            port: 0,
            issuer: None,
            tls: false,
            keys_file: None,
            access_token_alg: "RS256".to_owned(),
            id_token_alg: "RS256".to_owned(),
            signing_kid: None,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            client_secret_post: false,
            resource: DEFAULT_RESOURCE.to_owned(),
            audience: None,
            backchannel_logout_uri: None,
            backchannel_timeout_ms: 5000,
            access_token_ttl: 600,
            roles: Vec::new(),
            sub: None,
            sid: None,
            claims: None,
        }
    }
}

impl OidcOptions {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut flag = |name: &str, value: String| {
            a.push(format!("--{name}"));
            a.push(value);
        };
        flag("port", self.port.to_string());
        if let Some(issuer) = &self.issuer {
            flag("issuer", issuer.clone());
        }
        if self.tls {
            let tls = repo_root().join("testdata/tls");
            flag("tls-cert", tls.join("server.crt").display().to_string());
            flag("tls-key", tls.join("server.key").display().to_string());
        }
        if let Some(keys) = &self.keys_file {
            flag("keys", keys.display().to_string());
        }
        flag("access-token-alg", self.access_token_alg.clone());
        flag("id-token-alg", self.id_token_alg.clone());
        if let Some(kid) = &self.signing_kid {
            flag("signing-kid", kid.clone());
        }
        flag("client-id", self.client_id.clone());
        flag("client-secret", self.client_secret.clone());
        let method = if self.client_secret_post {
            "client_secret_post"
        } else {
            "client_secret_basic"
        };
        flag("client-auth-method", method.to_owned());
        flag("resource", self.resource.clone());
        if let Some(aud) = &self.audience {
            flag("audience", aud.clone());
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            flag("backchannel-logout-uri", uri.clone());
        }
        flag(
            "backchannel-timeout-ms",
            self.backchannel_timeout_ms.to_string(),
        );
        flag("access-token-ttl", self.access_token_ttl.to_string());
        if !self.roles.is_empty() {
            flag("roles", self.roles.join(","));
        }
        if let Some(sub) = &self.sub {
            flag("sub", sub.clone());
        }
        if let Some(sid) = &self.sid {
            flag("sid", sid.clone());
        }
        if let Some(claims) = &self.claims {
            flag("claims", claims.to_string());
        }
        a.push("--exit-with-stdin".to_owned());
        a
    }
}

/// A token request beyond [`OidcProvider::client_credentials_token`]: the
/// `test_*` fields are the fixture's per-request overrides of the options.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub scope: String,
    /// Another resource indicator: `aud` becomes that URI.
    pub resource: Option<String>,
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// `realm_access.roles` (replaces the options' roles).
    pub roles: Option<Vec<String>>,
    /// Merged last into the payload (`null` removes a claim), e.g.
    /// `{"iat": 1000, "tenant": "acme"}`.
    pub claims: Option<Value>,
}

/// A back-channel logout to trigger.
#[derive(Clone, Debug, Default)]
pub struct LogoutRequest {
    pub sub: String,
    pub sid: Option<String>,
    /// Another client id: the logout token's `aud`.
    pub client_id: Option<String>,
    /// Where to POST, instead of the options' `backchannel_logout_uri`.
    pub backchannel_logout_uri: Option<String>,
}

/// What became of a triggered back-channel logout.
#[derive(Clone, Debug)]
pub struct BackchannelOutcome {
    /// The client answered 200 or 204.
    pub delivered: bool,
    /// The logout token oidc-provider signed and POSTed (None when the
    /// request was refused before one was made).
    pub logout_token: Option<String>,
    /// The client's status code, when it answered something else than 200/204.
    pub status: Option<u16>,
    /// The client's answer body, when it was not delivered.
    pub body: Option<String>,
    /// Why it was not delivered.
    pub error: Option<String>,
}

/// One HTTP answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Value,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// A running `oidc-provider`.
pub struct OidcProvider {
    /// The issuer, exactly as in discovery and in every token's `iss`.
    pub issuer: String,
    pub port: u16,
    /// Where it listens: `http://127.0.0.1:PORT` (or https).
    pub origin: String,
    opts: OidcOptions,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// Starts the provider and waits (at most 30 s) until it listens.
    pub fn start(opts: &OidcOptions) -> OidcProvider {
        let mut p = OidcProvider {
            issuer: String::new(),
            port: opts.port,
            origin: String::new(),
            opts: opts.clone(),
            child: None,
            stdin: None,
            stderr: Arc::new(Mutex::new(String::new())),
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let fixture = fixture_dir();
        let mut child = Command::new(node())
            .arg(fixture.join("provider.mjs"))
            .args(self.opts.args())
            .current_dir(&fixture)
            // Logout tokens may go to an HTTPS gateway using testdata/tls.
            .env("NODE_EXTRA_CA_CERTS", test_ca_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start node provider.mjs: {e}. {}", install_hint()));
        // The provider exits when this pipe closes, even if the test process
        // dies without dropping the handle.
        self.stdin = child.stdin.take();

        let log = Arc::clone(&self.stderr);
        log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr_done = thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() > STDERR_CAP {
                    let cut = log.len() - STDERR_CAP / 2;
                    let cut = (cut..log.len())
                        .find(|&i| log.is_char_boundary(i))
                        .unwrap_or(log.len());
                    log.replace_range(..cut, "[...]\n");
                }
                log.push_str(&line);
                line.clear();
            }
        });

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(origin) = line.strip_prefix("listening on ") {
                    let _ = tx.send(origin.trim().to_owned());
                }
            }
        });
        self.child = Some(child);

        let origin = match rx.recv_timeout(START_TIMEOUT) {
            Ok(origin) => origin,
            Err(e) => {
                self.kill();
                let _ = stderr_done.join();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not listen within {START_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "exited".to_owned(),
                };
                panic!(
                    "oidc-provider (testdata/oidc/provider.mjs {:?}) {why}; its stderr:\n{}",
                    self.opts.args(),
                    self.stderr()
                );
            }
        };
        let port: u16 = origin
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad listening line: {origin}"));
        self.port = port;
        self.issuer = match &self.opts.issuer {
            Some(i) => i.replace("{port}", &port.to_string()),
            None => origin.clone(),
        }
        .trim_end_matches('/')
        .to_owned();
        self.origin = origin;
    }

    /// SIGKILL, and wait until the process is gone (its port is free again).
    pub fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the provider and starts it again on the same port with `opts`
    /// (e.g. another `keys_file`: a key rotation).
    pub fn restart(&mut self, opts: &OidcOptions) {
        self.kill();
        self.opts = OidcOptions {
            port: self.port,
            ..opts.clone()
        };
        self.spawn();
    }

    /// The options it runs with (`port` is the bound one after a restart).
    pub fn options(&self) -> &OidcOptions {
        &self.opts
    }

    /// What the provider wrote to stderr (its log).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// oidc-provider's default `jwks_uri`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Where to connect for `url`: a URL under the issuer's origin (which may
    /// name `localhost`) goes to 127.0.0.1:PORT, with the issuer's authority
    /// as `Host` (oidc-provider builds its endpoint URLs from `Host`, and TLS
    /// checks the certificate against it).
    fn local(&self, url: &str) -> (String, Option<String>) {
        let Some(scheme_end) = self.issuer.find("://") else {
            return (url.to_owned(), None);
        };
        let authority_end = self.issuer[scheme_end + 3..]
            .find('/')
            .map_or(self.issuer.len(), |j| scheme_end + 3 + j);
        match url.strip_prefix(&self.issuer[..authority_end]) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => (
                format!("{}{rest}", self.origin),
                Some(self.issuer[scheme_end + 3..authority_end].to_owned()),
            ),
            _ => (url.to_owned(), None),
        }
    }

    /// One HTTP request through `http.mjs`; `args` are its flags before the URL.
    fn http(&self, mut args: Vec<String>, url: &str) -> HttpResponse {
        let (target, host) = self.local(url);
        if let Some(host) = host {
            args.push("--header".to_owned());
            args.push(format!("Host: {host}"));
        }
        args.push("--ca".to_owned());
        args.push(test_ca_file().display().to_string());
        args.push("--timeout-ms".to_owned());
        args.push(HTTP_TIMEOUT_MS.to_string());
        args.push(target);
        let out = run_script("http.mjs", &args);
        assert!(
            out.status.success(),
            "HTTP request to the OpenID provider failed: {}\nprovider stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.stderr()
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "http.mjs printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        HttpResponse {
            status: v["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            headers: v["headers"].clone(),
            body: v["body"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// GET `url` (under the issuer, or anywhere).
    pub fn get(&self, url: &str) -> HttpResponse {
        self.http(Vec::new(), url)
    }

    fn get_json(&self, url: &str) -> Value {
        let r = self.get(url);
        assert_eq!(r.status, 200, "GET {url}: {}", r.body);
        r.json()
    }

    /// The discovery document.
    pub fn discovery(&self) -> Value {
        self.get_json(&self.discovery_url())
    }

    /// The published (public) JWK Set.
    pub fn jwks(&self) -> Value {
        self.get_json(&self.jwks_uri())
    }

    /// The token endpoint's full answer to a client_credentials request, or
    /// its status and body when it refused.
    pub fn token(&self, req: &TokenRequest) -> Result<Value, String> {
        let mut args: Vec<String> = Vec::new();
        let mut form = |name: &str, value: &str| {
            args.push("--form".to_owned());
            args.push(format!("{name}={value}"));
        };
        form("grant_type", "client_credentials");
        if !req.scope.is_empty() {
            form("scope", &req.scope);
        }
        if let Some(r) = &req.resource {
            form("resource", r);
        }
        if let Some(s) = &req.sub {
            form("test_sub", s);
        }
        if let Some(s) = &req.sid {
            form("test_sid", s);
        }
        if let Some(r) = &req.roles {
            form("test_roles", &r.join(","));
        }
        if let Some(c) = &req.claims {
            form("test_claims", &c.to_string());
        }
        if self.opts.client_secret_post {
            form("client_id", &self.opts.client_id);
            form("client_secret", &self.opts.client_secret);
        } else {
            args.push("--basic".to_owned());
            args.push(format!(
                "{}:{}",
                self.opts.client_id, self.opts.client_secret
            ));
        }
        let r = self.http(args, &self.token_endpoint());
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(format!("token endpoint answered {}: {}", r.status, r.body))
        }
    }

    /// A JWT access token for the default resource with `scope`
    /// (space-separated; may be empty).
    pub fn client_credentials_token(&self, scope: &str) -> String {
        let answer = self
            .token(&TokenRequest {
                scope: scope.to_owned(),
                ..TokenRequest::default()
            })
            .unwrap_or_else(|e| panic!("{e}\nprovider stderr:\n{}", self.stderr()));
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {answer}"))
            .to_owned()
    }

    /// Makes oidc-provider's own `Client#backchannelLogout(sub, sid)` build,
    /// sign and POST a logout token to the client's `backchannel_logout_uri`
    /// (or the request's), and reports what came of it.
    pub fn backchannel_logout(&self, req: &LogoutRequest) -> BackchannelOutcome {
        let mut body = json!({ "sub": req.sub });
        if let Some(sid) = &req.sid {
            body["sid"] = json!(sid);
        }
        if let Some(id) = &req.client_id {
            body["client_id"] = json!(id);
        }
        if let Some(uri) = &req.backchannel_logout_uri {
            body["backchannel_logout_uri"] = json!(uri);
        }
        let url = format!("{}/test/backchannel-logout", self.origin);
        let r = self.http(vec!["--json".to_owned(), body.to_string()], &url);
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| json!({}));
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        BackchannelOutcome {
            delivered: r.status == 200 && v["ok"] == json!(true),
            logout_token: text("logout_token"),
            status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
            body: text("body"),
            error: text("error").or_else(|| (r.status != 200).then(|| r.body.clone())),
        }
    }

    /// [`Self::backchannel_logout`] to the configured client: `Ok` once the
    /// client answered 200 (or 204) to the logout token, else the reason
    /// (e.g. `expected 200 OK from ..., got: 400 Bad Request`).
    pub fn trigger_backchannel_logout(&self, sub: &str, sid: Option<&str>) -> Result<(), String> {
        let outcome = self.backchannel_logout(&LogoutRequest {
            sub: sub.to_owned(),
            sid: sid.map(str::to_owned),
            ..LogoutRequest::default()
        });
        if outcome.delivered {
            Ok(())
        } else {
            let mut why = outcome.error.unwrap_or_else(|| "not delivered".to_owned());
            if let Some(body) = outcome.body.filter(|b| !b.is_empty()) {
                why.push_str(&format!(" (body: {body})"));
            }
            Err(why)
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Ipv4Addr, TcpListener};

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    #[test]
    fn discovery_and_client_credentials_token_over_http() {
        let p = OidcProvider::start(&OidcOptions {
            roles: vec!["admin".into(), "clerk".into()],
            ..OidcOptions::default()
        });
        assert_eq!(p.issuer, format!("http://127.0.0.1:{}", p.port));
        let d = p.discovery();
        assert_eq!(d["issuer"], json!(p.issuer));
        assert_eq!(d["jwks_uri"], json!(p.jwks_uri()));
        assert_eq!(d["token_endpoint"], json!(p.token_endpoint()));
        let published = kids(&p.jwks());
        assert!(
            p.jwks()["keys"][0].get("d").is_none(),
            "private key published"
        );

        let token = p.client_credentials_token("orders:read orders:write");
        let (h, c) = decode_jwt(&token);
        assert_eq!(h["alg"], "RS256");
        assert_eq!(h["typ"], "at+jwt");
        let kid = h["kid"].as_str().expect("kid in header");
        assert!(published.iter().any(|k| k == kid), "{kid} not in JWKS");
        assert_eq!(c["iss"], json!(p.issuer));
        assert_eq!(c["aud"], DEFAULT_RESOURCE);
        assert_eq!(c["client_id"], DEFAULT_CLIENT_ID);
        assert_eq!(c["sub"], DEFAULT_CLIENT_ID);
        assert_eq!(c["scope"], "orders:read orders:write");
        assert_eq!(c["realm_access"]["roles"], json!(["admin", "clerk"]));
        assert!(c["jti"].is_string());
        let (iat, exp) = (
            c["iat"].as_u64().expect("iat"),
            c["exp"].as_u64().expect("exp"),
        );
        assert_eq!(exp - iat, 600);

        // Per-request overrides and another resource.
        let answer = p
            .token(&TokenRequest {
                scope: "a".into(),
                resource: Some("https://other.example.test/".into()),
                sub: Some("u-1".into()),
                sid: Some("s-1".into()),
                roles: Some(vec!["viewer".into()]),
                claims: Some(json!({"tenant": "acme", "iat": 1000})),
            })
            .expect("token");
        let (_, c) = decode_jwt(answer["access_token"].as_str().expect("access_token"));
        assert_eq!(c["aud"], "https://other.example.test/");
        assert_eq!(c["sub"], "u-1");
        assert_eq!(c["sid"], "s-1");
        assert_eq!(c["realm_access"]["roles"], json!(["viewer"]));
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["iat"], 1000);
    }

    #[test]
    fn https_issuer_with_path_es256_and_client_secret_post() {
        let p = OidcProvider::start(&OidcOptions {
            tls: true,
            issuer: Some("https://localhost:{port}/realms/main".into()),
            access_token_alg: "ES256".into(),
            client_secret_post: true,
            audience: Some("orders-api".into()),
            ..OidcOptions::default()
        });
        assert!(p.origin.starts_with("https://127.0.0.1:"));
        assert_eq!(
            p.issuer,
            format!("https://localhost:{}/realms/main", p.port)
        );
        let d = p.discovery();
        assert_eq!(d["issuer"], json!(p.issuer));
        assert_eq!(d["jwks_uri"], json!(format!("{}/jwks", p.issuer)));
        // Nothing is served outside the issuer's path but the test trigger.
        assert_eq!(
            p.get(&format!("{}/.well-known/openid-configuration", p.origin))
                .status,
            404
        );

        let (h, c) = decode_jwt(&p.client_credentials_token("orders:read"));
        assert_eq!(h["alg"], "ES256");
        assert_eq!(c["iss"], json!(p.issuer));
        assert_eq!(c["aud"], "orders-api");
        let jwks = p.jwks();
        let key = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == h["kid"])
            .expect("signing key published");
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
    }

    #[test]
    fn restart_on_the_same_port_with_rotated_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        generate_keys(&a, &[("RS256", "kid-a")]);
        generate_keys(&b, &[("RS256", "kid-b"), ("ES256", "kid-b-ec")]);
        let public = public_keys(&b);
        assert_eq!(kids(&public), ["kid-b", "kid-b-ec"]);
        assert!(public["keys"][0].get("d").is_none());
        assert_eq!(public["keys"][1]["alg"], "ES256");

        let opts = OidcOptions {
            keys_file: Some(a),
            ..OidcOptions::default()
        };
        let mut p = OidcProvider::start(&opts);
        let (port, issuer) = (p.port, p.issuer.clone());
        assert_eq!(kids(&p.jwks()), ["kid-a"]);
        let (h, _) = decode_jwt(&p.client_credentials_token(""));
        assert_eq!(h["kid"], "kid-a");

        p.restart(&OidcOptions {
            keys_file: Some(b),
            ..opts
        });
        assert_eq!((p.port, p.issuer.as_str()), (port, issuer.as_str()));
        assert_eq!(kids(&p.jwks()), ["kid-b", "kid-b-ec"]);
        let (h, c) = decode_jwt(&p.client_credentials_token(""));
        assert_eq!(h["kid"], "kid-b");
        assert_eq!(c["iss"], json!(issuer));
    }

    /// Answers the next requests with `statuses`, one connection each, and
    /// sends back each request's head and body.
    fn one_shot_listener(statuses: Vec<u16>) -> (u16, mpsc::Receiver<(String, String)>) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for status in statuses {
                let (mut s, _) = l.accept().expect("accept");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = s.read(&mut chunk).expect("read");
                    assert!(n > 0, "connection closed mid-request");
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]);
                        break (head, body.to_string());
                    }
                };
                let answer = if status == 200 {
                    String::new()
                } else {
                    r#"{"error":"invalid_request"}"#.to_owned()
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tx.send((head, body));
            }
        });
        (port, rx)
    }

    #[test]
    fn backchannel_logout_posts_a_signed_logout_token() {
        let (port, posted) = one_shot_listener(vec![200, 400, 200]);
        let p = OidcProvider::start(&OidcOptions {
            backchannel_logout_uri: Some(format!(
                "http://127.0.0.1:{port}/oidc/backchannel-logout"
            )),
            id_token_alg: "ES256".into(),
            ..OidcOptions::default()
        });
        let published = kids(&p.jwks());

        p.trigger_backchannel_logout("u-1", Some("s-1"))
            .expect("delivered");
        let (head, body) = posted
            .recv_timeout(Duration::from_secs(10))
            .expect("a POST");
        assert!(
            head.starts_with("POST /oidc/backchannel-logout HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{head}"
        );
        let token = body.strip_prefix("logout_token=").expect("logout_token=");
        let (h, c) = decode_jwt(token);
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["typ"], "logout+jwt");
        assert!(published.iter().any(|k| h["kid"] == json!(k)), "{h}");
        assert_eq!(c["iss"], json!(p.issuer));
        assert_eq!(c["aud"], DEFAULT_CLIENT_ID);
        assert_eq!(c["sub"], "u-1");
        assert_eq!(c["sid"], "s-1");
        assert_eq!(c["events"], json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
        assert!(c["jti"].is_string() && c["iat"].is_u64() && c["exp"].is_u64());
        assert!(c.get("nonce").is_none());

        // The client refuses: the reason comes back, and so does the token.
        let e = p.trigger_backchannel_logout("u-2", None).expect_err("400");
        assert!(e.contains("400") && e.contains("invalid_request"), "{e}");
        let (_, body) = posted.recv_timeout(Duration::from_secs(10)).expect("POST");
        let (_, c) = decode_jwt(body.strip_prefix("logout_token=").expect("form"));
        assert_eq!(c["sub"], "u-2");
        assert!(c.get("sid").is_none());

        // Another audience, and the token handed back for a replay.
        let outcome = p.backchannel_logout(&LogoutRequest {
            sub: "u-3".into(),
            client_id: Some("someone-else".into()),
            ..LogoutRequest::default()
        });
        assert!(outcome.delivered, "{outcome:?}");
        let (_, body) = posted.recv_timeout(Duration::from_secs(10)).expect("POST");
        let token = outcome.logout_token.expect("logout token");
        assert_eq!(body, format!("logout_token={token}"));
        assert_eq!(decode_jwt(&token).1["aud"], "someone-else");

        // Nobody listens any more.
        let e = p
            .trigger_backchannel_logout("u-4", None)
            .expect_err("refused");
        assert!(e.contains("ECONNREFUSED"), "{e}");
    }

    #[test]
    #[should_panic(expected = "provider.mjs: --keys /nonexistent/keys.json: ENOENT")]
    fn a_provider_that_cannot_start_is_a_loud_panic_with_its_stderr() {
        OidcProvider::start(&OidcOptions {
            keys_file: Some(PathBuf::from("/nonexistent/keys.json")),
            ..OidcOptions::default()
        });
    }

    #[test]
    fn generate_keys_for_every_supported_algorithm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.json");
        let algs = ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"];
        let spec: Vec<(&str, &str)> = algs.iter().map(|a| (*a, *a)).collect();
        generate_keys(&path, &spec);
        let set: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let keys = set["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), algs.len());
        for (k, alg) in keys.iter().zip(algs) {
            assert_eq!(k["alg"], alg);
            assert_eq!(k["kid"], alg);
            assert_eq!(k["use"], "sig");
            assert!(k["d"].is_string(), "{k}");
        }
        assert_eq!(keys[5]["crv"], "Ed25519");
        assert_eq!(keys[4]["crv"], "P-521");

        // The provider signs with an EdDSA key from such a set.
        let p = OidcProvider::start(&OidcOptions {
            keys_file: Some(path),
            access_token_alg: "EdDSA".into(),
            ..OidcOptions::default()
        });
        let (h, _) = decode_jwt(&p.client_credentials_token("x"));
        assert_eq!(
            (h["alg"].as_str(), h["kid"].as_str()),
            (Some("EdDSA"), Some("EdDSA"))
        );
    }
}
