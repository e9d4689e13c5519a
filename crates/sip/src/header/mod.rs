//! Header fields (RFC 3261 sections 7.3 and 20). A message's headers are an
//! ordered list of (name, value) pairs whose values are views of the message
//! buffer; typed values are decoded when asked, by the accessors on
//! [`Headers`]. Unknown headers are kept verbatim.

mod addr;
mod name;
mod values;
mod via;

pub use addr::NameAddr;
pub use name::HeaderName;
pub use values::{AuthValue, CSeq, MediaType, Reason};
pub use via::Via;

pub(crate) use addr::parse_name_addr;
pub(crate) use values::{parse_auth, parse_cseq, parse_media_type, parse_reason};
pub(crate) use via::parse_via;

use crate::encode::Encode;
use crate::error::Error;
use crate::ids::CallId;
use crate::method::Method;
use crate::parse::lex::{self, Validate};
use bytes::Bytes;

/// One header line: a name and its raw value (white space trimmed, line
/// folding replaced by a space).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    name: HeaderName,
    value: Bytes,
}

impl Header {
    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The raw value.
    pub fn value(&self) -> &Bytes {
        &self.value
    }
}

/// The ordered header list of a message.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Headers {
    list: Vec<Header>,
}

fn header_err(header: &HeaderName, reason: &'static str) -> Error {
    Error::Header {
        header: static_name(header),
        reason,
    }
}

fn static_name(h: &HeaderName) -> &'static str {
    match h {
        HeaderName::Via => "Via",
        HeaderName::From => "From",
        HeaderName::To => "To",
        HeaderName::CallId => "Call-ID",
        HeaderName::CSeq => "CSeq",
        HeaderName::Contact => "Contact",
        HeaderName::MaxForwards => "Max-Forwards",
        HeaderName::Route => "Route",
        HeaderName::RecordRoute => "Record-Route",
        HeaderName::ContentType => "Content-Type",
        HeaderName::ContentLength => "Content-Length",
        HeaderName::Allow => "Allow",
        HeaderName::Supported => "Supported",
        HeaderName::Require => "Require",
        HeaderName::Expires => "Expires",
        HeaderName::Date => "Date",
        HeaderName::Authorization => "Authorization",
        HeaderName::ProxyAuthorization => "Proxy-Authorization",
        HeaderName::WwwAuthenticate => "WWW-Authenticate",
        HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
        HeaderName::Reason => "Reason",
        _ => "other",
    }
}

/// What [`Headers::check`] learns for the parser.
pub(crate) struct Checked {
    pub(crate) cseq_method: Method,
    pub(crate) content_length: Option<usize>,
}

/// `callid = word [ "@" word ]` (RFC 3261 section 25.1).
fn check_call_id(v: &[u8]) -> Result<(), Error> {
    let word = |s: &[u8]| !s.is_empty() && s.iter().all(|&c| lex::is_word_char(c));
    let ok = match memchr::memchr(b'@', v) {
        Some(at) => word(&v[..at]) && word(&v[at + 1..]),
        None => word(v),
    };
    if ok {
        Ok(())
    } else {
        Err(header_err(&HeaderName::CallId, "not a word[@word]"))
    }
}

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers { list: Vec::new() }
    }

    /// An empty list with room for `n` headers.
    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            list: Vec::with_capacity(n),
        }
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All header lines in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.list.iter()
    }

    /// Append a header line. The value must not contain CR or LF (the
    /// serializer would emit them verbatim); typed values come from
    /// [`Encode::to_bytes`].
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.list.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Append a typed value.
    pub fn push_typed(&mut self, name: HeaderName, value: &impl Encode) {
        self.push(name, value.to_bytes());
    }

    /// Insert a header line before all others of the same name (or at the
    /// end when there are none); used to add a top Via.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self
            .list
            .iter()
            .position(|h| h.name == name)
            .unwrap_or(self.list.len());
        self.list.insert(
            at,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Remove every line named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.list.len();
        self.list.retain(|h| &h.name != name);
        before - self.list.len()
    }

    /// Replace the first line named `name` (keeping its position) and remove
    /// the others, or append when absent.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.list.iter().position(|h| h.name == name) {
            Some(first) => {
                self.list[first].value = value;
                let mut k = 0;
                self.list.retain(|h| {
                    k += 1;
                    k - 1 == first || h.name != name
                });
            }
            None => self.push(name, value),
        }
    }

    /// The first raw value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.list.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    /// Every raw line value of `name`, unsplit.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    /// Every value of `name`, split at top-level commas when the header's
    /// grammar is a list ([`HeaderName::is_list`]).
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = Bytes> + 'a {
        let split = name.is_list();
        self.get_all(name).flat_map(move |v| {
            let mut whole = Some(v.clone());
            let mut parts = split.then(|| lex::split_commas(v));
            std::iter::from_fn(move || match &mut parts {
                Some(p) => p.next().map(|p| v.slice_ref(p)),
                None => whole.take(),
            })
        })
    }

    fn single(&self, name: &HeaderName) -> Result<&Bytes, Error> {
        let mut it = self
            .list
            .iter()
            .filter(|h| &h.name == name)
            .map(|h| &h.value);
        let v = it.next().ok_or(Error::MissingHeader(static_name(name)))?;
        if it.next().is_some() {
            return Err(header_err(name, "appears more than once"));
        }
        Ok(v)
    }

    fn optional_single(&self, name: &HeaderName) -> Result<Option<&Bytes>, Error> {
        match self.single(name) {
            Ok(v) => Ok(Some(v)),
            Err(Error::MissingHeader(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via, Error>> + '_ {
        self.values(&HeaderName::Via)
            .map(|v| parse_via(&v, &v).map_err(|r| header_err(&HeaderName::Via, r)))
    }

    /// The top Via (the one this hop added).
    pub fn top_via(&self) -> Result<Via, Error> {
        self.vias()
            .next()
            .unwrap_or(Err(Error::MissingHeader("Via")))
    }

    /// Replace the top Via value (e.g. after adding `received`/`rport`,
    /// RFC 3261 section 18.2.1), keeping any further values that shared its
    /// header line.
    pub fn set_top_via(&mut self, via: &Via) {
        let Some(first) = self.list.iter().position(|h| h.name == HeaderName::Via) else {
            self.push_typed(HeaderName::Via, via);
            return;
        };
        let line = self.list[first].value.clone();
        let mut parts = lex::split_commas(&line);
        parts.next();
        let rest: Vec<Bytes> = parts.map(|p| line.slice_ref(p)).collect();
        self.list[first].value = via.to_bytes();
        for (k, v) in rest.into_iter().enumerate() {
            self.list.insert(
                first + 1 + k,
                Header {
                    name: HeaderName::Via,
                    value: v,
                },
            );
        }
    }

    fn addr(&self, name: &HeaderName) -> Result<NameAddr, Error> {
        let v = self.single(name)?;
        parse_name_addr(v, v).map_err(|r| header_err(name, r))
    }

    /// The From address (with its tag).
    pub fn from_addr(&self) -> Result<NameAddr, Error> {
        self.addr(&HeaderName::From)
    }

    /// The To address (with its tag, once a dialog exists).
    pub fn to_addr(&self) -> Result<NameAddr, Error> {
        self.addr(&HeaderName::To)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<CallId, Error> {
        let v = self.single(&HeaderName::CallId)?;
        check_call_id(v)?;
        Ok(CallId::new(v.clone()))
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, Error> {
        parse_cseq(self.single(&HeaderName::CSeq)?).map_err(|r| header_err(&HeaderName::CSeq, r))
    }

    fn addr_list(&self, name: &HeaderName) -> Result<Vec<NameAddr>, Error> {
        self.values(name)
            .map(|v| parse_name_addr(&v, &v).map_err(|r| header_err(name, r)))
            .collect()
    }

    /// The Contact addresses (empty for none or for `*`).
    pub fn contacts(&self) -> Result<Vec<NameAddr>, Error> {
        if self.contact_is_wildcard() {
            return Ok(Vec::new());
        }
        self.addr_list(&HeaderName::Contact)
    }

    /// Whether the Contact is `*` (a REGISTER removing all bindings).
    pub fn contact_is_wildcard(&self) -> bool {
        let mut it = self.values(&HeaderName::Contact);
        matches!((it.next(), it.next()), (Some(v), None) if &v[..] == b"*")
    }

    /// Route set, in order.
    pub fn routes(&self) -> Result<Vec<NameAddr>, Error> {
        self.addr_list(&HeaderName::Route)
    }

    /// Record-Route set, in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, Error> {
        self.addr_list(&HeaderName::RecordRoute)
    }

    fn number(&self, name: &HeaderName, max: u64) -> Result<Option<u64>, Error> {
        match self.optional_single(name)? {
            None => Ok(None),
            Some(v) => lex::decimal(v, max)
                .map(Some)
                .ok_or_else(|| header_err(name, "not a number in range")),
        }
    }

    /// Max-Forwards (0..=255).
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        // number() bounded the value by 255.
        Ok(self.number(&HeaderName::MaxForwards, 255)?.map(|v| v as u8))
    }

    /// Content-Length.
    pub fn content_length(&self) -> Result<Option<usize>, Error> {
        let mut value = None;
        for v in self.get_all(&HeaderName::ContentLength) {
            let n = lex::decimal(v, u64::from(u32::MAX))
                .ok_or_else(|| header_err(&HeaderName::ContentLength, "not a number in range"))?;
            if value.is_some_and(|old| old != n) {
                return Err(header_err(&HeaderName::ContentLength, "conflicting values"));
            }
            value = Some(n);
        }
        // Bounded by u32::MAX, which fits usize on every supported target.
        Ok(value.map(|v| v as usize))
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType>, Error> {
        self.optional_single(&HeaderName::ContentType)?
            .map(|v| parse_media_type(v, v).map_err(|r| header_err(&HeaderName::ContentType, r)))
            .transpose()
    }

    /// Expires in seconds.
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        // number() bounded the value by u32::MAX.
        Ok(self
            .number(&HeaderName::Expires, u64::from(u32::MAX))?
            .map(|v| v as u32))
    }

    fn tokens(&self, name: &HeaderName) -> Result<Vec<Bytes>, Error> {
        self.values(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                if v.iter().all(|&c| lex::is_token_char(c)) {
                    Ok(v)
                } else {
                    Err(header_err(name, "not a token"))
                }
            })
            .collect()
    }

    /// Allow: the methods the peer accepts.
    pub fn allow(&self) -> Result<Vec<Method>, Error> {
        Ok(self
            .tokens(&HeaderName::Allow)?
            .iter()
            .map(|t| Method::from_token(t))
            .collect())
    }

    /// Supported option tags.
    pub fn supported(&self) -> Result<Vec<Bytes>, Error> {
        self.tokens(&HeaderName::Supported)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<Bytes>, Error> {
        self.tokens(&HeaderName::Require)
    }

    fn auth_list(&self, name: &HeaderName) -> Result<Vec<AuthValue>, Error> {
        self.get_all(name)
            .map(|v| parse_auth(v, v).map_err(|r| header_err(name, r)))
            .collect()
    }

    /// WWW-Authenticate challenges (one per header line).
    pub fn www_authenticate(&self) -> Result<Vec<AuthValue>, Error> {
        self.auth_list(&HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate challenges (one per header line).
    pub fn proxy_authenticate(&self) -> Result<Vec<AuthValue>, Error> {
        self.auth_list(&HeaderName::ProxyAuthenticate)
    }

    /// Authorization credentials (one per header line).
    pub fn authorization(&self) -> Result<Vec<AuthValue>, Error> {
        self.auth_list(&HeaderName::Authorization)
    }

    /// Proxy-Authorization credentials (one per header line).
    pub fn proxy_authorization(&self) -> Result<Vec<AuthValue>, Error> {
        self.auth_list(&HeaderName::ProxyAuthorization)
    }

    /// Reason values (RFC 3326).
    pub fn reason(&self) -> Result<Vec<Reason>, Error> {
        self.values(&HeaderName::Reason)
            .map(|v| parse_reason(&v, &v).map_err(|r| header_err(&HeaderName::Reason, r)))
            .collect()
    }

    /// User-Agent, raw.
    pub fn user_agent(&self) -> Option<&Bytes> {
        self.get(&HeaderName::UserAgent)
    }

    /// Check the headers that the stack relies on, as the parser does: every
    /// Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Route,
    /// Record-Route, Content-Length, Content-Type, Expires and Date.
    pub fn validate(&self) -> Result<(), Error> {
        self.check().map(|_| ())
    }

    /// One pass over the headers validating each one the stack relies on;
    /// returns what the parser needs for framing.
    pub(crate) fn check(&self) -> Result<Checked, Error> {
        let mut vias = 0usize;
        let (mut from, mut to, mut call_id, mut max_fwd, mut ctype, mut expires) =
            (0u8, 0u8, 0u8, 0u8, 0u8, 0u8);
        let mut cseq: Option<Method> = None;
        let mut content_length: Option<u64> = None;
        let once = |count: &mut u8, name: &HeaderName| -> Result<(), Error> {
            *count += 1;
            if *count > 1 {
                return Err(header_err(name, "appears more than once"));
            }
            Ok(())
        };
        for h in &self.list {
            let v = &h.value;
            let name = &h.name;
            match name {
                HeaderName::Via => {
                    for part in lex::split_commas(v) {
                        let (_, v2) = via::parse_via_versioned(Validate, part)
                            .map_err(|r| header_err(name, r))?;
                        if !v2 {
                            return Err(Error::Version);
                        }
                        vias += 1;
                    }
                }
                HeaderName::From | HeaderName::To => {
                    once(
                        if matches!(name, HeaderName::From) {
                            &mut from
                        } else {
                            &mut to
                        },
                        name,
                    )?;
                    parse_name_addr(Validate, v).map_err(|r| header_err(name, r))?;
                }
                HeaderName::CallId => {
                    once(&mut call_id, name)?;
                    check_call_id(v)?;
                }
                HeaderName::CSeq => {
                    if cseq.is_some() {
                        return Err(header_err(name, "appears more than once"));
                    }
                    cseq = Some(parse_cseq(v).map_err(|r| header_err(name, r))?.method);
                }
                HeaderName::MaxForwards => {
                    once(&mut max_fwd, name)?;
                    lex::decimal(v, 255)
                        .ok_or_else(|| header_err(name, "not a number in range"))?;
                }
                HeaderName::Expires => {
                    once(&mut expires, name)?;
                    lex::decimal(v, u64::from(u32::MAX))
                        .ok_or_else(|| header_err(name, "not a number in range"))?;
                }
                HeaderName::Contact if &v[..] == b"*" => {}
                HeaderName::Contact | HeaderName::Route | HeaderName::RecordRoute => {
                    for part in lex::split_commas(v) {
                        parse_name_addr(Validate, part).map_err(|r| header_err(name, r))?;
                    }
                }
                HeaderName::ContentLength => {
                    let n = lex::decimal(v, u64::from(u32::MAX))
                        .ok_or_else(|| header_err(name, "not a number in range"))?;
                    if content_length.is_some_and(|old| old != n) {
                        return Err(header_err(name, "conflicting values"));
                    }
                    content_length = Some(n);
                }
                HeaderName::ContentType => {
                    once(&mut ctype, name)?;
                    parse_media_type(Validate, v).map_err(|r| header_err(name, r))?;
                }
                // rfc1123-date ends in "GMT" (RFC 3261 section 20.17).
                HeaderName::Date if !v.ends_with(b" GMT") => {
                    return Err(header_err(name, "time zone is not GMT"));
                }
                _ => {}
            }
        }
        for (count, missing) in [
            (vias.min(1) as u8, "Via"),
            (from, "From"),
            (to, "To"),
            (call_id, "Call-ID"),
        ] {
            if count == 0 {
                return Err(Error::MissingHeader(missing));
            }
        }
        Ok(Checked {
            cseq_method: cseq.ok_or(Error::MissingHeader("CSeq"))?,
            // Bounded by u32::MAX, which fits usize on every supported target.
            content_length: content_length.map(|n| n as usize),
        })
    }

    /// Write `Name: value\r\n` for every line (canonical long names).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for h in &self.list {
            out.extend_from_slice(h.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The number of bytes [`Headers::encode`] writes.
    pub(crate) fn encoded_len(&self) -> usize {
        self.list
            .iter()
            .map(|h| h.name.as_str().len() + 4 + h.value.len())
            .sum()
    }
}

#[cfg(test)]
mod tests;
