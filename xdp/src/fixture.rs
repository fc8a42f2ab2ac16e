//! Fixture files of realistic validator traffic (to be written).
