//! undipy's native module: module wiring only.

mod bridge;
mod convert;
mod core;
pub mod dispatcher;
mod errors;
mod options;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
mod _undipy {
    #[pymodule_export]
    use crate::bridge::{Control, LoopBridge};
    #[pymodule_export]
    use crate::core::Core;
}
