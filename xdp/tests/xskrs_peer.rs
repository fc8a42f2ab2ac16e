//! The xsk-rs peer against std UDP sockets over veth.
