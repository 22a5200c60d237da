//! Command-line syntax (clap). Kept in step with SPEC §1 and the README.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "jwtgate",
    version,
    about = "An API gateway whose heart is a JWT authentication policy",
    long_about = "jwtgate proxies HTTP traffic and enforces JWT authentication per route: \
consumer key claim (APISIX/Kong style) or tokens from identity providers (JWKS, OpenID Connect \
discovery), RequiredPath/NotRequiredPath rules, authorization by claims, CORS, a logout blacklist \
and log-out-everywhere (subject cut-offs, OIDC back-channel logout). Routes, consumers and \
providers come from the config file or from etcd.\n\n\
Quickstart: jwtgate run --config examples/quickstart.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway. Logs to stderr (filter with JWTGATE_LOG, e.g. "debug";
    /// JWTGATE_LOG_FORMAT=json for one JSON object per line).
    /// SIGTERM/SIGINT: stop accepting, finish in-flight requests (30 s bound), exit 0;
    /// a second one while it stops exits at once (143 SIGTERM, 130 SIGINT).
    /// SIGHUP, or an edit of the file or of a file it names (certificates,
    /// keys, key sets): reload the config (an invalid one is rejected and
    /// the running config stays). SIGUSR1/SIGUSR2 do nothing.
    /// Under systemd (Type=notify) it reports READY=1 once serving, and in
    /// STATUS= whether the last reload was applied or refused, and which
    /// settings wait for a restart.
    Run(RunArgs),
    /// Validate a config file: exit 0 if valid (a "warning:" line for each setting
    /// that is valid but likely not meant), else list every problem with its location.
    Check(CheckArgs),
    /// Mint or explain tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Routes, consumers and providers in etcd (a config with a config_source).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// bash: jwtgate completions bash > /etc/bash_completion.d/jwtgate
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: jwtgate man | man -l -
    Man,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Make etcd hold exactly the routes, consumers and providers of FILE (whose
    /// config_source says where), in one transaction. Unchanged objects are not
    /// rewritten: pushing the same file twice changes nothing. Refused whole
    /// (exit 1, etcd unchanged) if an object is invalid or a protection forbids
    /// any part of it. Exit 2 if FILE cannot be read or has no config_source, 3 if
    /// etcd cannot be reached.
    Push(PushArgs),
    /// Print the routes, consumers and providers etcd holds as YAML that `push`
    /// accepts once a config_source is added (secrets as stored). Exit 1 if some
    /// object in etcd could not be read (it is left out and named on stderr), 2 if
    /// FILE cannot be read, is not a valid config or has no config_source, 3 if etcd
    /// cannot be reached.
    Pull(PullArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// File with a config_source and the routes, consumers and providers to push.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Say what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// File with the config_source to read from (a node's file will do).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Config file (YAML).
    #[arg(long, short, value_name = "FILE", default_value = "jwtgate.yaml")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Config file (YAML).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a token (for development and tests), printed on stdout.
    ///
    /// For a consumer of a config (--config F --consumer NAME; RS/PS/ES/EdDSA
    /// consumers also need --private-key), as an identity provider of a config
    /// (--config F --provider NAME --private-key FILE [--kid K]), or from explicit
    /// --key/--alg/--secret|--private-key.
    Sign(Box<SignArgs>),
    /// Say, step by step, what the gateway would do with a token and why.
    /// Exit 0 if it would be accepted, 1 if refused, 2 on a usage or config error,
    /// 3 if it cannot tell: valid but the revocation store could not be read
    /// (e.g. an embedded store held by a running gateway), or a node file's
    /// routes are in etcd, which did not answer, and the node kept no local
    /// copy of them (with one, that copy is read, with a note).
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Config file holding the consumer (or provider).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Consumer username in the config.
    #[arg(long, requires = "config")]
    pub consumer: Option<String>,
    /// Identity provider of the config: the token gets its issuer as `iss`
    /// and its first audience as `aud` (needs --private-key, and --kid
    /// unless its key set has one key for --alg).
    #[arg(long, requires = "config", conflicts_with = "consumer")]
    pub provider: Option<String>,
    /// `kid` header parameter: the provider key that signed the token.
    #[arg(long)]
    pub kid: Option<String>,
    /// Use this route's key_claim_name (with --config).
    #[arg(long, requires = "config")]
    pub route: Option<String>,
    /// The consumer key to put in the key claim (without --config). Left
    /// out, the token has no key claim (e.g. a provider-style token with
    /// --claim iss=...).
    #[arg(long, conflicts_with_all = ["consumer", "provider"])]
    pub key: Option<String>,
    /// Algorithm: HS256 (the default) HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA.
    /// With --provider: one of its algorithms (default: its first). Not with
    /// --consumer, whose credential sets it.
    #[arg(
        long,
        conflicts_with = "consumer",
        // Listed for the shell completions (and checked here too).
        value_parser = [
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA",
        ],
        hide_possible_values = true,
    )]
    pub alg: Option<String>,
    /// HMAC secret (without --config). On the command line, other local
    /// users may read it (ps, /proc) and the shell keeps it: prefer
    /// --secret-file.
    #[arg(long, conflicts_with = "consumer")]
    pub secret: Option<String>,
    /// Read the HMAC secret from FILE, or from stdin with "-" (one final
    /// newline is not part of it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["consumer", "provider", "secret", "private_key"])]
    pub secret_file: Option<PathBuf>,
    /// The secret is base64 of the real key bytes.
    #[arg(long)]
    pub base64_secret: bool,
    /// PEM private key file (PKCS#8, or PKCS#1/SEC1) for RS*, PS*, ES*, EdDSA.
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Claim that carries the consumer key (default: the route's key_claim_name, else "key").
    #[arg(long)]
    pub key_claim_name: Option<String>,
    /// Lifetime in seconds: exp = now + ttl. 0 = no exp claim.
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true, value_parser = parse_ttl)]
    pub ttl: u64,
    /// Extra claim, repeatable: k=v. v is parsed as JSON when it parses (123, true, null, "quoted"), else a string. It replaces a claim the command sets (the key claim, iat, exp): --claim exp=1 makes an expired token.
    #[arg(long = "claim", value_name = "K=V")]
    pub claims: Vec<String>,
}

/// `--ttl`: seconds from now, and a negative one said so, where clap
/// took `-5` for an unknown option.
fn parse_ttl(text: &str) -> Result<u64, String> {
    match text.parse::<i64>() {
        Ok(n) if n < 0 => Err(
            "the lifetime is seconds from now, 0 or more (0: no exp); for \
             an expired token, --claim exp=1"
                .into(),
        ),
        _ => text
            .parse::<u64>()
            .map_err(|_| "expected seconds, a whole number (0: no exp)".into()),
    }
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The token, or "-" to read it from stdin (keeps it out of shell history).
    pub token: String,
    /// Config file.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Route whose policy applies (default: the route matching --request, else the first route with a jwt policy).
    #[arg(long)]
    pub route: Option<String>,
    /// The request, e.g. "GET /v1/orders". The token is taken to ride in the route's header; a different one in the query (?jwt=) is refused, as the gateway takes one token per request.
    #[arg(long)]
    pub request: Option<String>,
}
