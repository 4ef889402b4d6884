//! Helpers shared by the integration tests.

pub mod http;
pub mod openapi;
pub mod receiver;
