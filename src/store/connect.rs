//! Connecting to PostgreSQL: the URL's own settings (host, user, `sslmode`, …) plus the
//! configuration's timeouts and CA file.

use std::time::Duration;

use postgres_native_tls::MakeTlsConnector;

/// How to connect to a PostgreSQL store, besides its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSettings {
    /// Give up connecting after this long (unless the URL sets `connect_timeout`).
    pub connect_timeout: Duration,
    /// A statement running longer than this is cancelled by the server.
    pub statement_timeout: Duration,
    /// PEM certificates trusted besides the system's, for `sslmode=require`.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresSettings {
    fn default() -> PostgresSettings {
        PostgresSettings {
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// One connection. TLS is negotiated as the URL's `sslmode` says (`prefer` by default).
pub(super) fn connect(url: &str, settings: &PostgresSettings) -> Result<postgres::Client, String> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(settings.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("driftgate");
    }
    let mut client = config.connect(tls(settings)?).map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!(
            // Notices (`relation … already exists, skipping`) are not worth a log line.
            "SET statement_timeout = {}; SET client_min_messages = warning",
            settings.statement_timeout.as_millis()
        ))
        .map_err(|e| e.to_string())?;
    Ok(client)
}

fn tls(settings: &PostgresSettings) -> Result<MakeTlsConnector, String> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let certificate = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
        builder.add_root_certificate(certificate);
    }
    let connector = builder.build().map_err(|e| e.to_string())?;
    Ok(MakeTlsConnector::new(connector))
}
