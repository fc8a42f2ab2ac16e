//! Monitoring a workspace (to be written).
