//! `driftgate store migrate` and `driftgate store check`.

use std::path::Path;

use super::{write_stdout, CliError, CommandOutcome, StoreCommand};
use crate::store::{schema, Store};

/// Runs a `store` subcommand.
pub(super) fn run(command: &StoreCommand) -> Result<CommandOutcome, CliError> {
    match command {
        StoreCommand::Migrate { config } => migrate(config),
        StoreCommand::Check { config } => check(config),
    }
}

fn migrate(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let (before, _) = schema::versions(&config.store).unwrap_or((0, 0));
    drop(Store::open(&config.store)?);
    let (after, _) = schema::versions(&config.store)?;
    let text = if before == after {
        format!("{}: schema version {after}, up to date\n", config.store)
    } else {
        format!("{}: schema version {before} → {after}\n", config.store)
    };
    write_stdout(&text)?;
    Ok(CommandOutcome::Done)
}

fn check(path: &Path) -> Result<CommandOutcome, CliError> {
    let config = crate::config::load(path)?;
    let (version, expected) = schema::versions(&config.store)?;
    let mut text = format!(
        "{}: reachable, schema version {version} (this driftgate: {expected})\n",
        config.store
    );
    if version == expected {
        for line in Store::open_read_only(&config.store)?.summary()? {
            text.push_str(&line);
            text.push('\n');
        }
    }
    write_stdout(&text)?;
    if version != expected {
        return Err(CliError::Schema(format!(
            "the store's schema is version {version}, this driftgate's {expected}: run `driftgate store migrate --config {}`",
            path.display()
        )));
    }
    Ok(CommandOutcome::Done)
}
