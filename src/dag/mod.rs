//! Selective retraining DAGs: definitions ([`spec`]), planning which tasks a decision calls for
//! ([`plan`](mod@plan)), what a run is asked to do ([`request`]), the executor ([`executor`]: the dispatcher, and runs here in [`local`]) and the
//! remote orchestrators ([`remote`]: Airflow, Argo, Kubeflow).

pub mod airflow;
pub mod argo;
pub mod executor;
pub mod kubeflow;
pub mod local;
pub mod plan;
mod recorder;
pub mod remote;
pub mod request;
pub mod spec;

pub use plan::{plan, Plan, PlannedTask, Selection};
pub use request::run_id;
pub use spec::{Airflow, AirflowApi, Argo, Condition, Dag, Kubeflow, Remote, Task};
