//! Configuration file of the repository server (TOML).
//!
//! ```toml
//! listen = "0.0.0.0:7400"           # repository protocol (TCP)
//! metrics_listen = "127.0.0.1:7401" # Prometheus text over HTTP (optional)
//! capacity_mib = 1024               # or capacity_pages = 262144 (exactly one of the two)
//! memlock = "require"               # "require" | "try" | "off"
//! max_connections = 256
//! hello_timeout_ms = 10000
//!
//! [[client]]
//! id = 1
//! name = "dom0-a"
//! token = "00112233445566778899aabbccddeeff"   # 128-bit capability, 32 hex digits
//! max_pages = 131072                         # optional per-client quota
//! ```

use coopswap_proto::wire::{Capability, PAGE_SIZE};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

/// Whether the page memory must be locked in RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MemLock {
    /// Fail to start if `mlock` fails (production).
    #[default]
    Require,
    /// Try `mlock`, log a warning if it fails.
    Try,
    /// Do not lock (tests, development).
    Off,
}

/// One client allowed to use the repository.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client id sent in HELLO.
    pub id: u64,
    /// Name for logs.
    pub name: String,
    /// Capability token.
    pub token: Capability,
    /// Most pages this client may hold (≤ capacity).
    pub max_pages: u64,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Repository protocol listener.
    pub listen: SocketAddr,
    /// Prometheus metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Capacity in pages.
    pub capacity_pages: u64,
    /// Memory locking policy.
    pub memlock: MemLock,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Time a new connection has to send a valid HELLO.
    pub hello_timeout_ms: u64,
    /// Allowed clients.
    pub clients: Vec<ClientConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: u64,
    name: Option<String>,
    token: String,
    max_pages: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    metrics_listen: Option<String>,
    capacity_mib: Option<u64>,
    capacity_pages: Option<u64>,
    #[serde(default)]
    memlock: MemLock,
    max_connections: Option<usize>,
    hello_timeout_ms: Option<u64>,
    #[serde(default, rename = "client")]
    clients: Vec<RawClient>,
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or unknown key.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// Semantic error.
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(msg.into()))
}

/// Parse a 32-hex-digit token.
pub fn parse_token(s: &str) -> Option<Capability> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Capability(out))
}

impl Config {
    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let listen: SocketAddr = match raw.listen.parse() {
            Ok(a) => a,
            Err(_) => return invalid(format!("listen: '{}' is not an address:port", raw.listen)),
        };
        let metrics_listen = match raw.metrics_listen {
            None => None,
            Some(s) => match s.parse() {
                Ok(a) => Some(a),
                Err(_) => return invalid(format!("metrics_listen: '{s}' is not an address:port")),
            },
        };
        let capacity_pages = match (raw.capacity_mib, raw.capacity_pages) {
            (Some(m), None) => m.checked_mul(1024 * 1024 / PAGE_SIZE as u64),
            (None, Some(p)) => Some(p),
            _ => return invalid("set exactly one of capacity_mib and capacity_pages"),
        };
        let Some(capacity_pages) = capacity_pages.filter(|&p| p > 0 && p <= u64::from(u32::MAX))
        else {
            return invalid("capacity must be between 1 page and 16 TiB");
        };
        if usize::try_from(capacity_pages)
            .ok()
            .and_then(|p| p.checked_mul(PAGE_SIZE))
            .is_none()
        {
            return invalid("capacity does not fit in the address space");
        }
        let max_connections = raw.max_connections.unwrap_or(256);
        if max_connections == 0 {
            return invalid("max_connections must be at least 1");
        }
        let hello_timeout_ms = raw.hello_timeout_ms.unwrap_or(10_000);
        if hello_timeout_ms == 0 {
            return invalid("hello_timeout_ms must be at least 1");
        }
        if raw.clients.is_empty() {
            return invalid("no [[client]] configured: nobody could use this repository");
        }
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        let mut clients = Vec::new();
        for c in raw.clients {
            let name = c.name.unwrap_or_else(|| format!("client-{}", c.id));
            let Some(token) = parse_token(&c.token) else {
                return invalid(format!(
                    "client {}: token must be 32 hex digits (128 bits)",
                    c.id
                ));
            };
            if token.0 == [0; 16] {
                return invalid(format!(
                    "client {}: the all-zero token is not allowed",
                    c.id
                ));
            }
            if !ids.insert(c.id) {
                return invalid(format!("client id {} appears twice", c.id));
            }
            if !tokens.insert(token.0) {
                return invalid(format!(
                    "client {}: token already used by another client",
                    c.id
                ));
            }
            let max_pages = c.max_pages.unwrap_or(capacity_pages).min(capacity_pages);
            clients.push(ClientConfig {
                id: c.id,
                name,
                token,
                max_pages,
            });
        }
        Ok(Config {
            listen,
            metrics_listen,
            capacity_pages,
            memlock: raw.memlock,
            max_connections,
            hello_timeout_ms,
            clients,
        })
    }

    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:7400"
metrics_listen = "127.0.0.1:7401"
capacity_mib = 4
memlock = "off"
[[client]]
id = 1
token = "00112233445566778899aabbccddeeff"
[[client]]
id = 2
name = "b"
token = "ffeeddccbbaa99887766554433221100"
max_pages = 10
"#;

    #[test]
    fn parses_example() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.capacity_pages, 1024);
        assert_eq!(c.memlock, MemLock::Off);
        assert_eq!(c.clients.len(), 2);
        assert_eq!(c.clients[0].max_pages, 1024);
        assert_eq!(c.clients[0].name, "client-1");
        assert_eq!(c.clients[1].max_pages, 10);
        assert_eq!(c.clients[0].token.0[1], 0x11);
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../repod.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.memlock, MemLock::Require);
        assert!(c.metrics_listen.is_some());
    }

    #[test]
    fn rejects_bad_configs() {
        let cases = [
            (
                GOOD.replace("capacity_mib = 4", "capacity_mib = 4\ncapacity_pages = 3"),
                "exactly one",
            ),
            (GOOD.replace("capacity_mib = 4", ""), "exactly one"),
            (
                GOOD.replace("capacity_mib = 4", "capacity_pages = 0"),
                "capacity",
            ),
            (GOOD.replace("127.0.0.1:7400", "nowhere"), "listen"),
            (GOOD.replace("id = 2", "id = 1"), "twice"),
            (
                GOOD.replace(
                    "ffeeddccbbaa99887766554433221100",
                    "00112233445566778899aabbccddeeff",
                ),
                "already used",
            ),
            (
                GOOD.replace("ffeeddccbbaa99887766554433221100", "xyz"),
                "32 hex",
            ),
            (
                GOOD.replace(
                    "ffeeddccbbaa99887766554433221100",
                    "00000000000000000000000000000000",
                ),
                "all-zero",
            ),
            (
                GOOD.replace("memlock = \"off\"", "memlock = \"maybe\""),
                "memlock",
            ),
            (GOOD.replace("memlock = \"off\"", "colour = 1"), "colour"),
            (
                GOOD.split("[[client]]").next().unwrap().to_string(),
                "no [[client]]",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}
