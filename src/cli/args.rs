//! The commands' arguments: every flag's doc comment is its `--help` text.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::drift::{Correction, DriftSettings, Method};

/// Arguments of `driftgate replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The service configuration file (TOML), with its models and policies.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where the recorded data comes from.
    #[command(flatten)]
    pub recorded: RecordedArgs,
    /// The stream to replay through (needed when the configuration has several).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Also draw the policies' signals against their thresholds, triggers marked, as SVG.
    #[arg(long, value_name = "OUT.svg")]
    pub chart: Option<PathBuf>,
}

/// Where `replay` and `backtest` read recorded data: a file, or a topic's offset range.
#[derive(Debug, Args)]
pub struct RecordedArgs {
    /// Recorded data: JSONL (one message per line, as producers send them) or CSV (one record
    /// per row); for `backtest`, labelled records with `ts`.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "topic",
        conflicts_with = "topic"
    )]
    pub input: Option<PathBuf>,
    /// Instead of a file: read this topic (usually the stream's) from the configured brokers,
    /// without joining the service's group or committing offsets.
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// With --topic: where to start, inclusive: `earliest` (default), an offset for every
    /// partition, or `partition:offset` pairs (`0:1200,1:980`; other partitions start at the
    /// earliest).
    #[arg(long, value_name = "OFFSETS", requires = "topic")]
    pub start: Option<String>,
    /// With --topic: where to stop, exclusive: `latest` (default: the end when the reading
    /// starts), an offset for every partition, or `partition:offset` pairs.
    #[arg(long, value_name = "OFFSETS", requires = "topic")]
    pub end: Option<String>,
}

/// `driftgate config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a service configuration (with `DRIFTGATE__…` overrides applied) and print every
    /// problem with its key path; exit status 2 when it is invalid.
    Check {
        /// The service configuration file (TOML).
        file: PathBuf,
    },
}

/// `driftgate store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store's tables or bring them up to this version (the service also does this
    /// when it starts; run it first to migrate before rolling instances out).
    Migrate {
        /// The service configuration file (TOML) naming the store.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Connect to the store without changing it and print its schema version, the instances
    /// sharing it, who owns which partition and the work waiting; exit status 1 when it cannot
    /// be reached, 2 when its schema is not this version's.
    Check {
        /// The service configuration file (TOML) naming the store.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Output format of the drift report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (default on a terminal).
    Table,
    /// The JSON report (default when piped).
    Json,
    /// One self-contained HTML page, the dashboard's views of the report: styles inline, charts
    /// as SVG, nothing fetched when it is opened.
    Html,
}

/// Arguments of `driftgate drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Reference: a JSONL/CSV data file or a baseline profile from `baseline build`.
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// Current data: a JSONL or CSV file.
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Schema file (TOML or JSON) fixing features and kinds; inferred from the reference if absent.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Count and report malformed lines instead of stopping at the first one.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Also test the numeric features jointly: `mmd` (MMD² with a permutation p-value) or
    /// `pca` (PCA reconstruction error); repeat for both. Needs the reference as a data file and
    /// every numeric value present.
    #[arg(long, value_enum)]
    pub multivariate: Vec<crate::drift::multivariate::Multivariate>,
    /// Exit with status 3 when dataset drift is detected.
    #[arg(long)]
    pub fail_on_drift: bool,
    /// Decision settings.
    #[command(flatten)]
    pub decision: DecisionArgs,
}

/// Decision settings shared by commands that decide drift.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// Significance level (family-wise, before correction).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Quantile bins for numeric binned metrics (PSI, Jensen–Shannon, Hellinger).
    #[arg(long, default_value_t = crate::drift::bins::DEFAULT_BINS)]
    pub bins: usize,
    /// Method that decides numeric features.
    #[arg(long, value_enum, default_value = "ks")]
    pub numeric_method: Method,
    /// Method that decides categorical features.
    #[arg(long, value_enum, default_value = "chi2")]
    pub categorical_method: Method,
    /// A fixed threshold for distance methods (score >= threshold is drift), replacing the
    /// sample-size-aware critical value.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Permutations for a permutation test of every feature (0: the test's own p-value or the
    /// chi-square approximation where expected counts are large enough, a permutation test
    /// elsewhere; Wasserstein then uses 1000).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed for permutation tests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Multiple-testing correction across features.
    #[arg(long, value_enum, default_value = "benjamini_hochberg")]
    pub correction: Correction,
    /// Dataset drift when at least this share of features drifts (Evidently's rule), instead of
    /// when any feature drifts after correction.
    #[arg(long)]
    pub drift_share: Option<f64>,
    /// Features with fewer usable values on either side are not tested.
    #[arg(long, default_value_t = 1)]
    pub min_samples: u64,
}

impl DecisionArgs {
    pub(super) fn settings(&self) -> DriftSettings {
        DriftSettings {
            alpha: self.alpha,
            bins: self.bins,
            numeric_method: self.numeric_method,
            categorical_method: self.categorical_method,
            threshold: self.threshold,
            permutations: self.permutations,
            seed: self.seed,
            correction: self.correction,
            drift_share: self.drift_share,
            min_samples: self.min_samples,
        }
    }
}

/// `driftgate baseline …`
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Build a baseline profile from training data.
    Build(BuildArgs),
    /// Print a summary of a baseline profile (and check it, its id included).
    Show {
        /// The baseline file (NPZ or JSON).
        file: PathBuf,
    },
    /// Rewrite a baseline in the other layout; its id stays the same.
    Convert {
        /// The baseline file (NPZ or JSON).
        input: PathBuf,
        /// Where to write it: JSON when the name ends in `.json`, NPZ otherwise. Refused when
        /// the file exists.
        output: PathBuf,
    },
}

/// Arguments of `driftgate baseline build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Training data: a JSONL or CSV file.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the profile: the binary NPZ layout, or JSON when the name ends in
    /// `.json`.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Schema file (TOML or JSON); inferred from the data if absent.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Quantile bins per numeric feature.
    #[arg(long, default_value_t = crate::drift::bins::DEFAULT_BINS)]
    pub bins: usize,
    /// Distinct values kept per numeric feature: a feature with at most this many is kept
    /// exactly (as distinct values with counts when that is smaller), above it as a seeded
    /// reservoir sample of this many values.
    #[arg(long, default_value_t = crate::baseline::DEFAULT_SAMPLE_CAP)]
    pub sample_cap: usize,
    /// Seed of the reservoir sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Complete rows of the numeric features kept (a seeded uniform sample) for multivariate
    /// tests against the baseline (`drift --multivariate`); 0 keeps none.
    #[arg(long, default_value_t = crate::baseline::DEFAULT_JOINT_ROWS)]
    pub joint_rows: usize,
    /// Count and report malformed lines instead of stopping at the first one.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Most memory, in MB, the decoded numeric values may take. A file whose values would take
    /// more is read once per group of numeric features that fits, with the same result. Default:
    /// half the memory the system has available.
    #[arg(long, value_name = "MB")]
    pub memory_mb: Option<u64>,
}
