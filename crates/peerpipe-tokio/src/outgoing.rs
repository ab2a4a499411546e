//! A message on its way to the endpoint: what it is, and its data as shared [`Bytes`], so
//! that a call that waits for a send slot, and the outbox that feeds the endpoint its
//! fragments, never copy it.

use bytes::Bytes;
use peerpipe_core::{validate_topic, wire, Duration as CoreDuration, Instant, MessageKind, MsgId};
use peerpipe_host::{Error, Message, MAX_PAYLOAD};

use crate::state::State;

/// What an outgoing message is.
enum Kind {
    Request,
    Reply(MsgId),
    End,
    Abort,
}

/// A validated message (or END / ABORT data) ready for the endpoint's `send_from`.
pub(crate) struct Outgoing {
    kind: Kind,
    topic: String,
    data: Bytes,
}

impl Outgoing {
    /// A request or reply for an endpoint of `TOPIC`-byte topics; its data is moved, not
    /// copied. [`Error::Invalid`] for a topic the endpoint would refuse, before any wait.
    pub(crate) fn message<const TOPIC: usize>(msg: Message) -> Result<Self, Error> {
        validate_topic(msg.topic(), TOPIC).map_err(Error::Invalid)?;
        let kind = match msg.kind() {
            MessageKind::Request => Kind::Request,
            MessageKind::Reply { req_id } => Kind::Reply(req_id),
        };
        let topic = msg.topic().to_owned();
        Ok(Outgoing {
            kind,
            topic,
            data: Bytes::from(msg.into_data()),
        })
    }

    /// END (`end`) or ABORT data; [`Error::Invalid`] beyond [`MAX_PAYLOAD`].
    pub(crate) fn close(end: bool, data: Vec<u8>) -> Result<Self, Error> {
        if data.len() > MAX_PAYLOAD {
            return Err(Error::Invalid(peerpipe_core::Error::PayloadTooLarge {
                len: data.len(),
                max: MAX_PAYLOAD,
            }));
        }
        Ok(Outgoing {
            kind: if end { Kind::End } else { Kind::Abort },
            topic: String::new(),
            data: Bytes::from(data),
        })
    }

    fn item(&self) -> wire::Item<'_> {
        match self.kind {
            Kind::Request => wire::Item::Request { topic: &self.topic },
            Kind::Reply(req_id) => wire::Item::Reply {
                topic: &self.topic,
                req_id: req_id.0,
            },
            Kind::End => wire::Item::End,
            Kind::Abort => wire::Item::Abort,
        }
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    State<P, T, RX, TX, F>
{
    /// Hands `out` to the endpoint (`timeout`: `None` for `default_request_timeout`); its
    /// data goes to the outbox (shared, not copied) until the send's outcome is taken.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        out: &Outgoing,
        timeout: Option<CoreDuration>,
    ) -> Result<MsgId, peerpipe_core::Error> {
        let id = self
            .ep
            .send_from(now, out.item(), out.data.len() as u64, timeout)?;
        self.outbox.insert(id, out.data.clone());
        self.sending.push(id);
        Ok(id)
    }
}
