//! Selective retraining DAGs: definitions ([`spec`]), planning which tasks a decision calls for
//! ([`plan`]), and the local executor ([`executor`]).

pub mod airflow;
pub mod argo;
pub mod executor;
pub mod kubeflow;
pub mod plan;
pub mod remote;
pub mod spec;

pub use plan::{plan, Plan, PlannedTask, Selection};
pub use spec::{Airflow, AirflowApi, Argo, Condition, Dag, Kubeflow, Remote, Task};
