//! [`Aio`]: the one verb of the crate, and its contract.

use crate::error::SendError;
use crate::pkt::PktInfo;

/// Something that takes batches of packets: one edge of a pipeline.
///
/// # The contract of [`send`](Aio::send)
///
/// `send(batch, flush)` hands the packets of `batch` to the backend, in
/// order, best effort.
///
/// - **Success** (`Ok(())`): every packet of the batch was taken.
/// - **Failure** (`Err(e)`): packets `[0, e.batch_idx)` were taken and
///   packets `[e.batch_idx, batch.len())` were not; the backend holds
///   nothing of them. The caller decides what to do with the rest:
///   - [`SendErrorKind::Inval`](crate::SendErrorKind::Inval) is a per-packet error: the packet at
///     `e.batch_idx` is the culprit (for example longer than [`BUF_MAX`](crate::BUF_MAX) on
///     a backend that bounds length). Retrying it fails again.
///   - [`SendErrorKind::Again`](crate::SendErrorKind::Again): the backend is out of room. Retrying from
///     `e.batch_idx` after the backend drained takes each packet exactly
///     once: nothing is duplicated and nothing is lost.
/// - An empty batch succeeds (and still honours `flush`). A zero-length
///   packet succeeds and is delivered as a zero-length packet.
/// - The same buffer may appear more than once in a batch, and buffers may
///   overlap: descriptors are read-only borrows.
/// - **The backend retains no interest in the batch or the buffers after
///   `send` returns**, whatever it returns. It copies what it needs or
///   consumes it (writes it to a socket, a ring, a file) before returning,
///   so the caller may reuse or drop every buffer at once. This is what
///   makes `send` safe: nothing outlives the borrow.
/// - `flush` asks the backend for a best-effort transmit of everything
///   buffered so far (by this call and earlier ones). `flush = false` lets a
///   backend gather packets across calls (to fill a ring or a `sendmmsg`
///   before the syscall); it does not allow it to hold packets forever, and
///   a later flush (an empty batch with `flush = true` will do) pushes them.
///
/// "Taken" means the backend accepted responsibility for the packet; for a
/// network backend that is not delivery (UDP may still drop it), but it is
/// never a packet that the backend will also ask to be retried.
///
/// # Chaining
///
/// A backend's receive side holds a downstream `Aio` and calls its `send`
/// with each received batch, `flush = true` at the end of a poll burst. Its
/// own `send` is its transmit side. Wrappers such as [`PcapTee`](crate::PcapTee) are both at
/// once.
///
/// `Aio` is dyn-compatible: `&mut dyn Aio` and `Box<dyn Aio>` are aios too.
pub trait Aio {
    /// Sends `batch`, in order, best effort; see the trait documentation for
    /// the full contract.
    ///
    /// # Errors
    /// [`SendError`] with the index of the first packet not sent:
    /// [`SendErrorKind::Inval`](crate::SendErrorKind::Inval) when that packet is bad for this backend,
    /// [`SendErrorKind::Again`](crate::SendErrorKind::Again) when the backend is out of room.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError>;
}

impl<T: Aio + ?Sized> Aio for &mut T {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        (**self).send(batch, flush)
    }
}

impl<T: Aio + ?Sized> Aio for Box<T> {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        (**self).send(batch, flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts calls and refuses everything after `room` packets.
    struct Counter {
        calls: usize,
        room: usize,
    }

    impl Aio for Counter {
        fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
            self.calls += 1;
            if batch.len() > self.room {
                let idx = self.room;
                self.room = 0;
                return Err(SendError::again(idx));
            }
            self.room -= batch.len();
            Ok(())
        }
    }

    /// Sends through whatever `A` is, so the blanket impls are the ones used.
    fn send_via<A: Aio>(mut aio: A, batch: &[PktInfo<'_>]) -> Result<(), SendError> {
        aio.send(batch, true)
    }

    #[test]
    fn aio_is_dyn_compatible_through_refs_and_boxes() {
        let pkts = [PktInfo::new(b"a"), PktInfo::new(b"b")];
        let mut inner = Counter { calls: 0, room: 3 };
        assert_eq!(send_via(&mut inner, &pkts), Ok(()));
        let dynamic: &mut dyn Aio = &mut inner;
        assert_eq!(send_via(dynamic, &pkts), Err(SendError::again(1)));
        assert_eq!(inner.calls, 2);

        let mut boxed: Box<dyn Aio> = Box::new(Counter { calls: 0, room: 1 });
        assert_eq!(send_via(&mut boxed, &[]), Ok(()));
        assert_eq!(send_via(boxed, &pkts), Err(SendError::again(1)));
    }
}
