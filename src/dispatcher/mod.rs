//! The engine: pure Rust, no PyO3. The binding layer beside it turns Python
//! options into `RequestSpec`s and delivers `Event`s to Python.

pub mod codec;
pub mod config;
pub mod conn;
pub mod error;
pub mod event;
pub mod platform;
pub mod pool;
pub mod request;
pub mod runtime;
pub mod transport;

pub use config::{Config, Origin};
pub use error::Error;
pub use event::{ConnInfo, Event, Head, Sink, SinkRef};
pub use pool::{Pool, Stats};
pub use request::{Body, Request, RequestCtl, RequestSpec};
