//! Helpers shared by the integration tests.

pub mod config;
pub mod http;
pub mod kafka;
pub mod openapi;
pub mod proxy;
pub mod receiver;
pub mod servers;
