//! Dialogs (RFC 3261 section 12): the state two user agents share for the
//! length of a call. A dialog is identified by Call-ID, local tag and remote
//! tag; it holds the local and remote sequence numbers, the remote target
//! (the peer's Contact) and the route set (Record-Route), and builds the
//! requests sent inside it (section 12.2.1.1).

use crate::encode::Encode;
use crate::error::Error;
use crate::header::{NameAddr, Via};
use crate::ids::{CallId, Tag};
use crate::message::{Request, RequestBuilder, Response};
use crate::method::Method;
use crate::uri::Uri;
use std::fmt;

/// A dialog's identifier (RFC 3261 section 12): Call-ID and both tags.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: CallId,
    /// Our tag (From in requests we send).
    pub local_tag: Tag,
    /// The peer's tag.
    pub remote_tag: Tag,
}

impl fmt::Debug for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DialogId({};{};{})",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// The state of one dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    local: NameAddr,
    remote: NameAddr,
    local_seq: u32,
    remote_seq: Option<u32>,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
}

impl Dialog {
    /// The UAS side of a dialog made by `request` (section 12.1.1): the
    /// route set is Record-Route in order, the remote target its Contact.
    pub fn uas(request: &Request, local_tag: Tag) -> Result<Dialog, Error> {
        let h = request.headers();
        let remote = h.from_addr()?;
        let remote_tag = remote.tag().ok_or(Error::Header {
            header: "From",
            reason: "no tag",
        })?;
        let local = h.to_addr()?.with_tag(&local_tag);
        let remote_target = h
            .contacts()?
            .into_iter()
            .next()
            .map(|c| c.uri().clone())
            .ok_or(Error::MissingHeader("Contact"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: h.call_id()?,
                local_tag,
                remote_tag,
            },
            local,
            remote,
            local_seq: 0,
            remote_seq: Some(h.cseq()?.seq),
            remote_target,
            route_set: h.record_routes()?,
        })
    }

    /// The UAC side of a dialog made by a response to `request` (section
    /// 12.1.2): the route set is Record-Route reversed.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, Error> {
        let rh = request.headers();
        let h = response.headers();
        let local = rh.from_addr()?;
        let local_tag = local.tag().ok_or(Error::Header {
            header: "From",
            reason: "no tag",
        })?;
        let remote = h.to_addr()?;
        let remote_tag = remote.tag().ok_or(Error::Header {
            header: "To",
            reason: "no tag",
        })?;
        let remote_target = h
            .contacts()?
            .into_iter()
            .next()
            .map(|c| c.uri().clone())
            .unwrap_or_else(|| request.uri().clone());
        let mut route_set = h.record_routes()?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: rh.call_id()?,
                local_tag,
                remote_tag,
            },
            local,
            remote,
            local_seq: rh.cseq()?.seq,
            remote_seq: None,
            remote_target,
            route_set,
        })
    }

    /// The dialog's identifier.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Our address of record (with our tag).
    pub fn local(&self) -> &NameAddr {
        &self.local
    }

    /// The peer's address of record (with its tag).
    pub fn remote(&self) -> &NameAddr {
        &self.remote
    }

    /// Accept the CSeq of an in-dialog request from the peer: it must be
    /// higher than the last one (section 12.2.2), else the UAS answers 500.
    pub fn accept_remote_seq(&mut self, seq: u32) -> bool {
        if self.remote_seq.is_some_and(|last| seq <= last) {
            return false;
        }
        self.remote_seq = Some(seq);
        true
    }

    /// Update the remote target from a target refresh (re-INVITE, 2xx).
    pub fn refresh_target(&mut self, contact: Option<&NameAddr>) {
        if let Some(c) = contact {
            self.remote_target = c.uri().clone();
        }
    }

    /// A request inside the dialog (section 12.2.1.1). `method`s other than
    /// ACK and CANCEL take the next local CSeq; ACK reuses `ack_seq`.
    pub fn request(&mut self, method: Method, via: &Via, ack_seq: Option<u32>) -> RequestBuilder {
        let seq = match (&method, ack_seq) {
            (Method::Ack, Some(seq)) => seq,
            _ => {
                self.local_seq = self.local_seq.wrapping_add(1);
                self.local_seq
            }
        };
        let mut b = Request::builder(method, self.remote_target.clone())
            .via(via)
            .from_addr(&self.local)
            .to_addr(&self.remote)
            .call_id(&self.id.call_id)
            .cseq(seq);
        for r in &self.route_set {
            b = b.route(r);
        }
        b
    }

    /// The last local CSeq number used.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }
}

/// The (Call-ID, our tag) pair that routes an in-dialog request to its
/// dialog (RFC 3261 section 12.2.2: the To tag of a request is ours).
pub(crate) fn route_key(request: &Request) -> Option<(CallId, Tag)> {
    let h = request.headers();
    Some((h.call_id().ok()?, h.to_addr().ok()?.tag()?))
}

/// Whether the peer's message lists `method` in its Allow (e.g. UPDATE,
/// which we then use for session refreshes).
pub(crate) fn peer_allows(headers: &crate::header::Headers, method: &Method) -> bool {
    headers
        .allow()
        .unwrap_or_default()
        .iter()
        .any(|m| m == method)
}

/// Contact of a message, if any.
pub(crate) fn first_contact(headers: &crate::header::Headers) -> Option<NameAddr> {
    headers.contacts().ok()?.into_iter().next()
}

impl Encode for DialogId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.call_id.as_bytes());
        out.push(b';');
        out.extend_from_slice(self.local_tag.as_bytes());
        out.push(b';');
        out.extend_from_slice(self.remote_tag.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use crate::header::HeaderName;
    use bytes::Bytes;

    fn invite() -> Request {
        let text = "INVITE sip:bob@192.0.2.2 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
            Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n\
            From: <sip:alice@example.org>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
            Call-ID: c9\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\n\
            Content-Length: 0\r\n\r\n";
        match Message::parse(Bytes::from_static(text.as_bytes())) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uas_dialog_targets_the_contact_through_the_record_route() {
        let mut d = Dialog::uas(&invite(), Tag::from("b")).unwrap();
        assert_eq!(d.id().remote_tag, Tag::from("a"));
        assert!(!d.accept_remote_seq(7), "CSeq must grow");
        assert!(d.accept_remote_seq(8));
        let via = Via::new("UDP", crate::Host::domain("h"), None, &"z9hG4bK2".into());
        let bye = d.request(Method::Bye, &via, None).build().unwrap();
        assert_eq!(bye.uri().to_bytes(), &b"sip:alice@192.0.2.1:5070"[..]);
        assert_eq!(bye.headers().to_addr().unwrap().tag(), Some(Tag::from("a")));
        assert_eq!(
            bye.headers().from_addr().unwrap().tag(),
            Some(Tag::from("b"))
        );
        assert_eq!(bye.headers().cseq().unwrap().seq, 1);
        let routes = bye.headers().routes().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].uri().to_bytes(), &b"sip:p1.example;lr"[..]);
    }

    #[test]
    fn a_request_without_contact_cannot_make_a_dialog() {
        let mut r = invite();
        r.headers_mut().remove(&HeaderName::Contact);
        assert_eq!(
            Dialog::uas(&r, Tag::from("b")).err(),
            Some(Error::MissingHeader("Contact"))
        );
    }
}
