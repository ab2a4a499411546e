//! Owned messages and status items, as the application sees them.

use peerpipe_core::{validate_topic, Error as CoreError, GoneReason, MessageKind, MsgId};
use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, MAX_PAYLOAD, MAX_TOPIC};

/// A request or reply: a validated topic and up to [`MAX_PAYLOAD`] bytes of data.
///
/// ```
/// use peerpipe_host::{Message, MsgId};
///
/// let req = Message::request("train", b"round 1".to_vec())?;
/// assert_eq!(req.topic(), "train");
/// let rep = Message::reply("train", b"done".to_vec(), MsgId(3))?;
/// assert_eq!(rep.req_id(), Some(MsgId(3)));
/// assert!(Message::request("bad topic", vec![]).is_err());
/// # Ok::<(), peerpipe_host::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    kind: MessageKind,
    id: MsgId,
    topic: String,
    data: Vec<u8>,
}

impl Message {
    /// A request on `topic`.
    pub fn request(topic: impl Into<String>, data: impl Into<Vec<u8>>) -> Result<Self, Error> {
        Self::new(MessageKind::Request, topic.into(), data.into())
    }

    /// A reply on `topic` to the request `req_id`.
    pub fn reply(
        topic: impl Into<String>,
        data: impl Into<Vec<u8>>,
        req_id: MsgId,
    ) -> Result<Self, Error> {
        Self::new(MessageKind::Reply { req_id }, topic.into(), data.into())
    }

    /// A reply to this message, on its topic.
    pub fn reply_to(&self, data: impl Into<Vec<u8>>) -> Result<Self, Error> {
        Self::reply(self.topic.clone(), data, self.id)
    }

    /// A request whose data is `value` serialized with postcard.
    pub fn request_serde<T: Serialize>(topic: impl Into<String>, value: &T) -> Result<Self, Error> {
        Self::request(topic, to_bytes(value)?)
    }

    /// A reply to `req_id` whose data is `value` serialized with postcard.
    pub fn reply_serde<T: Serialize>(
        topic: impl Into<String>,
        value: &T,
        req_id: MsgId,
    ) -> Result<Self, Error> {
        Self::reply(topic, to_bytes(value)?, req_id)
    }

    /// A reply to this message, on its topic, whose data is `value` serialized with postcard.
    pub fn reply_to_serde<T: Serialize>(&self, value: &T) -> Result<Self, Error> {
        self.reply_to(to_bytes(value)?)
    }

    /// Deserializes the data with postcard.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        postcard::from_bytes(&self.data).map_err(Error::Decode)
    }

    fn new(kind: MessageKind, topic: String, data: Vec<u8>) -> Result<Self, Error> {
        validate_topic(&topic, MAX_TOPIC).map_err(Error::Invalid)?;
        if data.len() > MAX_PAYLOAD {
            return Err(Error::Invalid(CoreError::PayloadTooLarge {
                len: data.len(),
                max: MAX_PAYLOAD,
            }));
        }
        Ok(Message {
            kind,
            id: MsgId(0),
            topic,
            data,
        })
    }

    /// A message that arrived (in parts), with the id its sender gave it.
    pub(crate) fn received(kind: MessageKind, id: MsgId, topic: String, data: Vec<u8>) -> Self {
        Message {
            kind,
            id,
            topic,
            data,
        }
    }

    /// What the endpoint's [`send_from`](peerpipe_core::Endpoint::send_from) takes for this
    /// message: its kind and topic (the data goes to the [`Outbox`](crate::Outbox)).
    pub fn item(&self) -> peerpipe_core::wire::Item<'_> {
        match self.kind {
            MessageKind::Request => peerpipe_core::wire::Item::Request { topic: &self.topic },
            MessageKind::Reply { req_id } => peerpipe_core::wire::Item::Reply {
                topic: &self.topic,
                req_id: req_id.0,
            },
        }
    }

    /// An owned copy of a message the core received (its id, kind, topic and data).
    pub fn from_core<const P: usize, const T: usize>(m: &peerpipe_core::Message<P, T>) -> Self {
        Self::from_ref(m.into())
    }

    /// A copy of a message an endpoint lent ([`peerpipe_core::Endpoint::poll_event_ref`]).
    pub fn from_ref(m: peerpipe_core::MessageRef<'_>) -> Self {
        Message {
            kind: m.kind(),
            id: m.id(),
            topic: m.topic().to_owned(),
            data: m.data().to_vec(),
        }
    }

    /// The core's fixed-capacity form, for an endpoint of `P` payload and `T` topic bytes:
    /// [`Error::Invalid`] when the data or topic does not fit.
    pub fn to_core<const P: usize, const T: usize>(
        &self,
    ) -> Result<peerpipe_core::Message<P, T>, Error> {
        match self.kind {
            MessageKind::Request => peerpipe_core::Message::request(&self.topic, &self.data),
            MessageKind::Reply { req_id } => {
                peerpipe_core::Message::reply(&self.topic, &self.data, req_id)
            }
        }
        .map_err(Error::Invalid)
    }

    /// Request or reply.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.kind == MessageKind::Request
    }

    /// The request this replies to, for a reply.
    pub fn req_id(&self) -> Option<MsgId> {
        match self.kind {
            MessageKind::Reply { req_id } => Some(req_id),
            MessageKind::Request => None,
        }
    }

    /// The id the sender gave this message (zero before it is sent).
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the data out of the message.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(Error::Encode)
}

/// A change of the peer's status, as the original's status callback and queue see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// The peer ended the conversation, with its data.
    End(Vec<u8>),
    /// The peer aborted the conversation, with its data.
    Abort(Vec<u8>),
    /// The peer is gone: silent for `heartbeat_timeout`, or the transport broke (`cause`).
    Gone {
        /// Silence or transport.
        reason: GoneReason,
        /// The transport error, when there was one.
        cause: Option<IoCause>,
    },
    /// The peer restarted (a new session); the conversation goes on with it.
    PeerRestarted,
    /// The connection broke (`cause`) and the handler is getting a new one: the ACTIVE end
    /// reconnects, the PASSIVE end waits for the peer to. The conversation is not over:
    /// sends wait (within their timeouts), and the peer is reported
    /// [`Gone`](Status::Gone) only if no connection comes back in time.
    Reconnecting {
        /// Why the connection broke.
        cause: IoCause,
    },
    /// A new connection took the broken one's place, in the same session: what was in
    /// flight goes again on it, and arrives once, in order.
    Reconnected,
}

/// The I/O error that broke a transport: its kind, to match on, and its text, to show.
///
/// ```
/// use std::io;
/// use peerpipe_host::IoCause;
///
/// let cause = IoCause::from(&io::Error::from(io::ErrorKind::ConnectionRefused));
/// assert_eq!(cause.kind(), io::ErrorKind::ConnectionRefused);
/// assert!(cause.to_string().to_lowercase().contains("refused"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoCause {
    kind: std::io::ErrorKind,
    text: String,
}

impl IoCause {
    /// The kind of the I/O error (`ConnectionRefused`, `BrokenPipe`, `UnexpectedEof`, ...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.kind
    }
}

impl From<&std::io::Error> for IoCause {
    fn from(e: &std::io::Error) -> Self {
        IoCause {
            kind: e.kind(),
            text: e.to_string(),
        }
    }
}

impl std::fmt::Display for IoCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a handler's `get_next` / `recv` returns: a message, or a
/// status change when no status callback is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A request or reply from the peer.
    Message(Message),
    /// A change of the peer's status.
    Status(Status),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_decode_error_keeps_postcard_s_error_as_its_source() {
        let m = Message::request_serde("p", &7u8).unwrap();
        let err = m.decode::<(u64, u64)>().unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
        let source = err.source().expect("a source").to_string();
        assert!(err.to_string().ends_with(&source), "{err} / {source}");
        assert_eq!(m.decode::<u8>().unwrap(), 7);
    }

    #[test]
    fn reply_to_serde_answers_this_message() {
        let mut req = Message::request_serde("sum", &(2u8, 3u8)).unwrap();
        req.id = MsgId(9); // as a received message has
        let (a, b) = req.decode::<(u8, u8)>().unwrap();
        let rep = req.reply_to_serde(&(a + b)).unwrap();
        assert_eq!(rep.req_id(), Some(MsgId(9)));
        assert_eq!(rep.topic(), "sum");
        assert_eq!(rep.decode::<u8>().unwrap(), 5);
    }
}
