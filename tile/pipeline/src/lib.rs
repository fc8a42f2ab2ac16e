//! tilewire-pipeline: tile kinds, topologies and the runner that makes
//! pipelines of tiles.
#![forbid(unsafe_code)]

pub mod kinds;
pub mod pipeline;
pub mod topo;
