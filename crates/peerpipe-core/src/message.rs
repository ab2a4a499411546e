//! Messages: topic-tagged requests and replies with bounded data.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Topics the protocol reserves; user messages may not carry them.
pub const RESERVED_TOPICS: [&str; 5] = [
    "_END_",
    "_ABORT_",
    "_HEARTBEAT_",
    "_PEER_GONE_",
    "_STREAM_PROGRESS_",
];

/// A message's identity: unique among the messages one endpoint sends in one session.
///
/// Replies name their request by it ([`Message::req_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MsgId(pub u64);

/// Whether a message asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageKind {
    /// A request.
    Request,
    /// A reply to the request whose id is `req_id`.
    Reply {
        /// The id of the request this answers.
        req_id: MsgId,
    },
}

/// A request or reply with a validated topic and data of at most `PAYLOAD` bytes.
///
/// ```
/// use peerpipe_core::{Message, MessageKind, Error, MsgId};
///
/// let req: Message = Message::request("train", b"round 1")?;
/// assert_eq!(req.topic(), "train");
/// assert_eq!(req.kind(), MessageKind::Request);
///
/// let rep: Message = Message::reply("train", b"done", MsgId(7))?;
/// assert_eq!(rep.req_id(), Some(MsgId(7)));
///
/// assert_eq!(Message::<128, 32>::request("bad topic", b"").unwrap_err(), Error::InvalidTopic);
/// assert_eq!(Message::<128, 32>::request("_END_", b"").unwrap_err(), Error::ReservedTopic);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<const PAYLOAD: usize = 128, const TOPIC: usize = 32> {
    kind: MessageKind,
    id: MsgId,
    topic: String<TOPIC>,
    data: Vec<u8, PAYLOAD>,
}

/// Checks a user topic: non-empty, `[A-Za-z0-9_]` only, not reserved, at most `max` bytes.
pub fn validate_topic(topic: &str, max: usize) -> Result<(), Error> {
    check_topic(topic.as_bytes(), max)
}

/// [`validate_topic`] on the topic's bytes (a received frame's, before it is seen as a
/// `str`).
pub(crate) fn check_topic(topic: &[u8], max: usize) -> Result<(), Error> {
    if topic.is_empty()
        || !topic
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::InvalidTopic);
    }
    if RESERVED_TOPICS.iter().any(|r| r.as_bytes() == topic) {
        return Err(Error::ReservedTopic);
    }
    if topic.len() > max {
        return Err(Error::TopicTooLong {
            len: topic.len(),
            max,
        });
    }
    Ok(())
}

/// Copies `bytes` into a bounded vector, or says that they do not fit.
pub(crate) fn bounded<const N: usize>(bytes: &[u8]) -> Result<Vec<u8, N>, Error> {
    Vec::from_slice(bytes).map_err(|_| Error::PayloadTooLarge {
        len: bytes.len(),
        max: N,
    })
}

impl<const PAYLOAD: usize, const TOPIC: usize> Message<PAYLOAD, TOPIC> {
    /// A request on `topic` carrying `data`.
    pub fn request(topic: &str, data: &[u8]) -> Result<Self, Error> {
        Self::new(MessageKind::Request, topic, data)
    }

    /// A reply on `topic` to the request `req_id`.
    pub fn reply(topic: &str, data: &[u8], req_id: MsgId) -> Result<Self, Error> {
        Self::new(MessageKind::Reply { req_id }, topic, data)
    }

    /// A reply to this message, on its topic.
    pub fn reply_to(&self, data: &[u8]) -> Result<Self, Error> {
        Self::new(MessageKind::Reply { req_id: self.id }, &self.topic, data)
    }

    /// A request whose data is `value` serialized with postcard.
    pub fn request_serde<V: Serialize>(topic: &str, value: &V) -> Result<Self, Error> {
        let mut msg = Self::request(topic, &[])?;
        msg.set_data_serde(value)?;
        Ok(msg)
    }

    /// A reply to `req_id` whose data is `value` serialized with postcard.
    pub fn reply_serde<V: Serialize>(topic: &str, value: &V, req_id: MsgId) -> Result<Self, Error> {
        let mut msg = Self::reply(topic, &[], req_id)?;
        msg.set_data_serde(value)?;
        Ok(msg)
    }

    /// A reply to this message, on its topic, whose data is `value` serialized with postcard.
    pub fn reply_to_serde<V: Serialize>(&self, value: &V) -> Result<Self, Error> {
        let mut msg = self.reply_to(&[])?;
        msg.set_data_serde(value)?;
        Ok(msg)
    }

    /// Deserializes the data with postcard.
    pub fn decode<'de, V: Deserialize<'de>>(&'de self) -> Result<V, Error> {
        postcard::from_bytes(&self.data).map_err(|_| Error::Deserialize)
    }

    fn set_data_serde<V: Serialize>(&mut self, value: &V) -> Result<(), Error> {
        let mut buf = [0u8; PAYLOAD];
        let used = postcard::to_slice(value, &mut buf).map_err(|e| match e {
            postcard::Error::SerializeBufferFull => Error::PayloadTooLarge {
                len: postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
                    .unwrap_or(0),
                max: PAYLOAD,
            },
            _ => Error::Serialize,
        })?;
        self.data = bounded(used)?;
        Ok(())
    }

    fn new(kind: MessageKind, topic: &str, data: &[u8]) -> Result<Self, Error> {
        validate_topic(topic, TOPIC)?;
        let mut t = String::new();
        t.push_str(topic).map_err(|_| Error::TopicTooLong {
            len: topic.len(),
            max: TOPIC,
        })?;
        Ok(Message {
            kind,
            id: MsgId(0),
            topic: t,
            data: bounded(data)?,
        })
    }

    /// Builds a received message without validation (the wire decoder validated it).
    pub(crate) fn received(
        kind: MessageKind,
        id: MsgId,
        topic: String<TOPIC>,
        data: Vec<u8, PAYLOAD>,
    ) -> Self {
        Message {
            kind,
            id,
            topic,
            data,
        }
    }

    /// Its kind, topic and data, to be sent.
    pub(crate) fn into_parts(self) -> (MessageKind, String<TOPIC>, Vec<u8, PAYLOAD>) {
        (self.kind, self.topic, self.data)
    }

    #[cfg(test)]
    pub(crate) fn set_id(&mut self, id: MsgId) {
        self.id = id;
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

    /// The id the sender gave this message; zero on a message not yet sent.
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
    pub fn into_data(self) -> Vec<u8, PAYLOAD> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Msg = Message<16, 8>;

    #[test]
    fn topic_validation() {
        assert_eq!(Msg::request("", b"").unwrap_err(), Error::InvalidTopic);
        assert_eq!(Msg::request("a-b", b"").unwrap_err(), Error::InvalidTopic);
        assert_eq!(Msg::request("héllo", b"").unwrap_err(), Error::InvalidTopic);
        for t in RESERVED_TOPICS {
            assert_eq!(
                Message::<16, 32>::request(t, b"").unwrap_err(),
                Error::ReservedTopic
            );
        }
        assert_eq!(
            Msg::request("abcdefghi", b"").unwrap_err(),
            Error::TopicTooLong { len: 9, max: 8 }
        );
        assert!(Msg::request("ab_C9", b"").is_ok());
        assert!(Msg::request("_x_", b"").is_ok());
    }

    #[test]
    fn data_capacity() {
        assert_eq!(
            Msg::request("t", &[0; 17]).unwrap_err(),
            Error::PayloadTooLarge { len: 17, max: 16 }
        );
        assert_eq!(Msg::request("t", &[7; 16]).unwrap().data(), &[7; 16]);
    }

    #[test]
    fn serde_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Point {
            x: i32,
            y: i32,
        }
        let m = Msg::request_serde("p", &Point { x: -3, y: 400 }).unwrap();
        assert_eq!(m.decode::<Point>().unwrap(), Point { x: -3, y: 400 });
        assert_eq!(
            m.decode::<(u64, u64, u64)>().unwrap_err(),
            Error::Deserialize
        );
        assert_eq!(
            Msg::request_serde("p", &[1u64 << 60; 4]).unwrap_err(),
            Error::PayloadTooLarge { len: 36, max: 16 }
        );
        let r = Msg::reply_serde("p", &7u8, MsgId(3)).unwrap();
        assert_eq!(r.req_id(), Some(MsgId(3)));
    }

    #[test]
    fn reply_to_serde_answers_this_message() {
        let mut req = Msg::request_serde("sum", &(2u8, 3u8)).unwrap();
        req.set_id(MsgId(9));
        let (a, b) = req.decode::<(u8, u8)>().unwrap();
        let rep = req.reply_to_serde(&(a + b)).unwrap();
        assert_eq!(rep.kind(), MessageKind::Reply { req_id: MsgId(9) });
        assert_eq!(rep.topic(), "sum");
        assert_eq!(rep.decode::<u8>().unwrap(), 5);
        assert_eq!(
            req.reply_to_serde(&[1u64 << 60; 4]).unwrap_err(),
            Error::PayloadTooLarge { len: 36, max: 16 }
        );
    }

    #[test]
    fn reply_to_names_the_request() {
        let mut req = Msg::request("q", b"?").unwrap();
        req.set_id(MsgId(42));
        let rep = req.reply_to(b"!").unwrap();
        assert_eq!(rep.kind(), MessageKind::Reply { req_id: MsgId(42) });
        assert_eq!(rep.topic(), "q");
    }
}
