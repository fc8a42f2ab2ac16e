//! Links: one producer, any number of consumers, in a workspace.
//!
//! A link named `net.rx` is three kinds of named allocations in a workspace:
//! `net.rx.mc` (the [mcache]: frag metadata), `net.rx.dc`
//! (the [dcache]: payloads) and `net.rx.fs0`, `net.rx.fs1`, ...
//! (one [fseq] per consumer). Any process that joins the
//! workspace joins the link by name; what it finds is checked like any
//! shared object.
//!
//! # Flow control
//!
//! The producer holds *credits*: how many more frags it may publish before
//! it would overwrite one the slowest *reliable* consumer has not read.
//! Credits are `depth - (seq - min reliable progress)`, recomputed only when
//! they run out (one cache-line read per reliable consumer). With no credits
//! [`Producer::publish`] returns [`Backpressure`] and the caller waits,
//! retries or drops; it is never blocked inside the call. Unreliable
//! consumers never slow the producer: when they fall a ring behind they are
//! overrun, resync to the newest frag and count what they lost.
//!
//! # Restarts
//!
//! A producer that joins an existing link starts one past the newest seq
//! found on any mcache line, and writes payloads after that frag's, so a
//! restarted producer continues the stream instead of republishing old
//! sequence numbers or overwriting payloads still on the ring. A consumer that joins
//! starts at the progress its fseq last published, so a restarted consumer
//! continues where its predecessor left off (re-reading at most the frags
//! since that predecessor's last progress publish).

pub mod consumer;
pub mod dcache;
mod ends;
mod error;
pub mod frag;
pub mod fseq;
mod handle;
pub mod ledger;
pub mod mcache;
pub mod producer;
pub mod tx;

pub use crate::link::consumer::{Consumer, Next, Poll};
pub use crate::link::error::LinkError;
pub use crate::link::handle::{Link, LinkParams, Reliability, CONSUMERS_MAX, LINK_NAME_MAX};
pub use crate::link::producer::{Backpressure, Producer};
