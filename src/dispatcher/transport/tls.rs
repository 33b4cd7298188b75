//! TLS over a dialled socket, with rustls driven sans-I/O: the connection's
//! reads and writes go through the session while the socket stays a
//! non-blocking fd on the runtime's reactor (no extra task). Ciphertext is
//! read in large pieces into a staging buffer (`WireIn`), which costs a copy
//! but saves a system call per 16 KiB record; rustls's unbuffered API
//! (decrypting in place in the connection's buffer) would save both.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind,
    ProtocolVersion, RootCertStore, SignatureScheme,
};

use super::wire::Wire;
use super::Idle;
use crate::dispatcher::error::Error;
use crate::dispatcher::event::ConnInfo;

/// What the user said about TLS (`tls=`), as PEM bytes and flags.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// The only roots trusted (PEM); None: the system's store.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM), for mutual TLS.
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    /// False: any certificate and name is accepted (still real TLS).
    pub verify: bool,
    /// Sent as SNI and checked; None: the origin's host.
    pub server_name: Option<String>,
    /// TLS 1.3 only (else 1.2 and 1.3).
    pub tls13_only: bool,
}

/// A dispatcher's TLS client: one rustls config (so sessions resume across
/// its connections) and the name its connections present.
#[derive(Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Builds the client once per dispatcher: roots are parsed here, never
    /// per connection.
    pub fn new(settings: &TlsSettings, host: &str) -> Result<TlsClient, String> {
        let provider = Arc::new(provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if settings.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?;
        let builder = if settings.verify {
            builder.with_root_certificates(roots(settings.ca.as_deref())?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        };
        let mut config = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("invalid tls cert: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| format!("invalid tls key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("invalid tls cert or key: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls cert and key go together".into()),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let wanted = settings.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(wanted.trim_matches(['[', ']']).to_owned())
            .map_err(|_| format!("invalid tls server name {wanted:?}"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }
}

/// aws-lc-rs with AES-128-GCM offered before AES-256-GCM, as browsers and
/// Go order them: servers that follow the client's order (nginx's default)
/// then pick it, and its SHA-256 key schedule runs on the CPU's SHA
/// instructions (aws-lc has none for SHA-384 on AMD), making handshakes and
/// bulk decryption cheaper at a security level TLS 1.3 requires of everyone.
fn provider() -> CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// The trusted roots: the given PEM bundle only, or the system's store
/// (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), or, on a system without
/// one, the Mozilla roots built in.
fn roots(ca: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some(pem) = ca {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("invalid tls ca: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("invalid tls ca: {e}"))?;
        }
        if store.is_empty() {
            return Err("invalid tls ca: no certificate in it".into());
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(store)
}

/// `verify=False`: any certificate for any name, but the handshake's
/// signatures are still checked (it stays a real TLS session).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One TLS session over a socket, or over another session (a tunnel
/// through an `https://` proxy).
pub struct TlsStream<W> {
    sock: W,
    session: ClientConnection,
    /// Ciphertext read and not yet given to the session.
    inbox: BytesMut,
    /// Decrypted bytes wait in the session: the connection must not wait
    /// for the socket to become readable before taking them (nor while
    /// `inbox` holds ciphertext).
    plaintext: bool,
}

/// Most encrypted bytes waiting for the socket.
const OUTBOX: usize = 1024 * 1024;

/// Ciphertext read from the socket per system call: rustls asks for at most
/// one record (~16 KiB) at a time, so a big body would cost a read per record.
const INBOX: usize = 256 * 1024;

/// The socket as rustls's reader: whole socket reads into `inbox`, handed
/// out as rustls asks. `now`: ask the kernel whatever the reactor last saw
/// (the idle probe).
struct WireIn<'a, W> {
    sock: &'a mut W,
    inbox: &'a mut BytesMut,
    now: bool,
}

impl<W: Wire> Read for WireIn<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inbox.is_empty() {
            self.inbox.reserve(INBOX);
            let got = if self.now {
                self.sock.read_now(self.inbox)?
            } else {
                self.sock.try_read_buf(self.inbox)?
            };
            if got == 0 {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.inbox.len());
        buf[..n].copy_from_slice(&self.inbox[..n]);
        self.inbox.advance(n);
        Ok(n)
    }
}

/// The socket as rustls's writer: all pending records in one vectored write.
struct WireOut<'a, W>(&'a mut W);

impl<W: Wire> Write for WireOut<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS failure as the user reads it: why a certificate was refused
/// (unknown issuer, expired, which name it is not valid for), or what broke.
fn tls_error(e: rustls::Error) -> io::Error {
    use rustls::CertificateError;
    let msg = match &e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate verify failed: unknown issuer (UnknownIssuer): no trusted \
             certificate authority signed it"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(c) => format!("certificate verify failed: {c}"),
        other => format!("TLS: {other}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<W: Wire> TlsStream<W> {
    /// Runs the handshake over `sock`.
    pub async fn connect(sock: W, client: &TlsClient) -> Result<TlsStream<W>, Error> {
        let mut session = ClientConnection::new(client.config.clone(), client.name.clone())
            .map_err(|e| Error::socket(format!("TLS: {e}")))?;
        // Room for a whole pipelined batch or a large body per write: the
        // connection already bounds what it queues (the default, 64 KiB,
        // splits a 64 KiB body and its head into two writes).
        session.set_buffer_limit(Some(OUTBOX));
        let mut s = TlsStream {
            sock,
            session,
            inbox: BytesMut::new(),
            plaintext: false,
        };
        let failed = |e: io::Error| Error::socket(e.to_string());
        let blocked = |e: &io::Error| e.kind() == io::ErrorKind::WouldBlock;
        while s.session.is_handshaking() || s.session.wants_write() {
            if s.session.wants_write() {
                s.sock.writable().await.map_err(failed)?;
                match s.flush() {
                    Err(e) if !blocked(&e) => return Err(failed(e)),
                    _ => {}
                }
            } else {
                s.readable().await.map_err(failed)?;
                match s.read_records(false) {
                    Ok(0) => {
                        return Err(Error::socket("other side closed during the TLS handshake"))
                    }
                    Err(e) if !blocked(&e) => return Err(failed(e)),
                    _ => {}
                }
            }
        }
        Ok(s)
    }

    /// The wire underneath.
    pub fn get_ref(&self) -> &W {
        &self.sock
    }

    /// `wire` (what the wire underneath reached) with this session's version,
    /// ALPN and whether it was resumed.
    pub fn info(&self, wire: ConnInfo) -> ConnInfo {
        let s = &self.session;
        ConnInfo {
            tls_version: match s.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
                Some(ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
                _ => None,
            },
            alpn: s.alpn_protocol().map(<[u8]>::to_vec),
            tls_resumed: s.handshake_kind() == Some(HandshakeKind::Resumed),
            ..wire
        }
    }

    /// Reads TLS records from the socket and decrypts them. 0: the socket
    /// reached its end.
    fn read_records(&mut self, now: bool) -> io::Result<usize> {
        let n = self.session.read_tls(&mut WireIn {
            sock: &mut self.sock,
            inbox: &mut self.inbox,
            now,
        })?;
        let state = self.session.process_new_packets().map_err(|e| {
            let _ = self.session.write_tls(&mut WireOut(&mut self.sock)); // the alert, if it can go
            tls_error(e)
        })?;
        self.plaintext = state.plaintext_bytes_to_read() > 0;
        Ok(n)
    }

    pub async fn readable(&self) -> io::Result<()> {
        if self.plaintext || !self.inbox.is_empty() {
            return Ok(()); // more to take without asking the socket
        }
        self.sock.readable().await
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.sock.writable().await
    }

    /// Decrypted bytes into `buf`'s spare capacity; 0 once the peer sent
    /// `close_notify`. The socket closing without it is an error: a body
    /// cut short must never look complete.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.read_plain(buf, false)
    }

    /// Fills `buf` with as much plaintext as the socket has for it now:
    /// records are decrypted one after the other until the buffer is full or
    /// the socket has nothing more, so a big body costs few reads and few
    /// events (as over TCP), not one per 16 KiB record.
    fn read_plain(&mut self, buf: &mut BytesMut, now: bool) -> io::Result<usize> {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024); // a full buffer must not read as the end
        }
        let mut got = 0;
        while buf.capacity() > buf.len() {
            let spare = buf.spare_capacity_mut();
            // SAFETY: the reader writes initialised bytes into the slice,
            // and only the `n` it reports are kept.
            let spare = unsafe { &mut *(spare as *mut [_] as *mut [u8]) };
            match self.session.reader().read(spare) {
                Ok(0) => return Ok(got), // close_notify: the end, once what came before is taken
                Ok(n) => {
                    // SAFETY: `n` bytes were just written.
                    unsafe { buf.set_len(buf.len() + n) };
                    got += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && got == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "other side closed without TLS close_notify",
                    ))
                }
                Err(_) if got > 0 => break, // said on the next read
                Err(e) => return Err(e),
            }
            match self.read_records(now) {
                Ok(_) => {} // at the end (0) the reader now says how it ended
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break,
                Err(e) => {
                    self.plaintext = false;
                    return Err(e);
                }
            }
            if self.session.wants_write() {
                self.flush()?; // e.g. a key update answered
            }
        }
        self.plaintext = self
            .session
            .process_new_packets()
            .map_err(tls_error)?
            .plaintext_bytes_to_read()
            > 0;
        Ok(got)
    }

    /// Encrypts and writes; how many plaintext bytes were taken.
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.session.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // The session's buffer is full: records must go out first.
            self.flush()?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.flush() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
            Ok(()) => Ok(n),
        }
    }

    /// Tells the server nothing more will come (its end of the stream), and
    /// sends that as far as the socket takes it now.
    pub fn close_notify(&mut self) {
        self.session.send_close_notify();
        let _ = self.flush();
    }

    /// Records not yet on the wire (here or in the session underneath).
    pub fn pending_output(&self) -> bool {
        self.session.wants_write() || self.sock.pending_output()
    }

    /// Writes pending records until done or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            self.session.write_tls(&mut WireOut(&mut self.sock))?;
        }
        self.sock.flush()
    }

    /// An idle connection: reads what the peer sent through the session, so
    /// that TLS-level records (session tickets, key updates) are not taken
    /// for an answer nobody asked for.
    pub fn probe_idle(&mut self, buf: &mut BytesMut) -> io::Result<Idle> {
        match self.read_plain(buf, true) {
            Ok(0) => Ok(Idle::Closed),
            Ok(_) => Ok(Idle::Data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Idle::Quiet),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Idle::Closed),
            Err(e) => Err(e),
        }
    }
}

/// A session carries another: the inner one's records are this one's
/// plaintext (a TLS tunnel through an `https://` proxy).
impl<W: Wire> Wire for TlsStream<W> {
    async fn readable(&self) -> io::Result<()> {
        TlsStream::readable(self).await
    }

    async fn writable(&self) -> io::Result<()> {
        TlsStream::writable(self).await
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.read_plain(buf, false)
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.read_plain(buf, true)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TlsStream::try_write_vectored(self, bufs)
    }

    fn pending_output(&self) -> bool {
        TlsStream::pending_output(self)
    }

    fn flush(&mut self) -> io::Result<()> {
        TlsStream::flush(self)
    }
}
