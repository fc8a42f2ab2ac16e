//! Pipelines from a topology (to be written).
