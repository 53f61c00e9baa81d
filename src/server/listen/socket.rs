//! A client's socket as hyper sees it: every byte in or out marks the connection's
//! activity, and hyper's own bare answers to requests it cannot parse (400, 414, 431,
//! written before any handler runs) are given a JSON body like every other error.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::watch::Activity;

/// A TCP stream that reports to its connection's [`Activity`].
pub struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// An answer written in hyper's place, and how much of it has left.
    replaced: Vec<u8>,
    sent: usize,
    max_head: usize,
    /// Nothing was written since the last flush: a write now starts an answer (hyper
    /// flushes after each), it is not the rest of one the socket took only in part.
    fresh: bool,
}

impl Watched {
    pub fn new(stream: TcpStream, activity: Arc<Activity>, max_head: usize) -> Watched {
        Watched {
            stream,
            activity,
            replaced: Vec::new(),
            sent: 0,
            max_head,
            fresh: true,
        }
    }

    /// Writes what is left of a replaced answer.
    fn poll_replaced(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replaced.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.replaced[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.activity.wrote(n);
        }
        self.replaced.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        this.activity.read(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replaced(cx))?;
        if this.fresh
            && this.activity.quiet()
            && let Some(answer) = json_answer(buf, this.max_head)
        {
            this.replaced = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.fresh = false;
        this.activity.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replaced(cx))?;
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        this.fresh = true;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replaced(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// hyper's answer to a request it could not parse is a bare head (`HTTP/1.1 431 Request
/// Header Fields Too Large`, `content-length: 0`, no content type), written while no
/// handler runs; the same status with a JSON body that says what is wrong.
pub fn json_answer(written: &[u8], max_head: usize) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?
        .get(..3)?;
    let headers = headers.to_ascii_lowercase();
    let bare = headers.lines().any(|h| h == "content-length: 0")
        && !headers.lines().any(|h| h.starts_with("content-type:"));
    if !bare {
        return None;
    }
    let message = match status {
        "400" => {
            "malformed HTTP request: the request line or a header cannot be parsed".to_string()
        }
        "414" => "the URL is too long".to_string(),
        "431" => format!("the request line and headers are over the {max_head} byte limit"),
        _ => return None,
    };
    let body = serde_json::json!({ "error": message }).to_string();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_answers_get_a_json_body() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 10:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(json_answer(bare, 65536).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(answer.contains("content-type: application/json\r\n"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("65536 byte limit"));
        // Anything else is written as it is.
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(json_answer(ours, 65536).is_none());
        assert!(json_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 65536).is_none());
        assert!(json_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n", 65536).is_none());
        assert!(json_answer(b"{\"body\": 1}", 65536).is_none());
    }

    #[tokio::test]
    async fn only_a_write_that_starts_an_answer_is_replaced() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut socket = Watched::new(server, Arc::new(Activity::new()), 65536);
        // An answer whose body the socket took in part; the rest of it, written after
        // its handler is done, happens to look like one of hyper's bare heads.
        let bare = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", bare.len());
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(bare.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        // After a flush, hyper's own bare answer is replaced.
        socket.write_all(bare.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        drop(socket);
        let mut got = String::new();
        let mut client = client;
        client.read_to_string(&mut got).await.unwrap();
        let (first, second) = got.split_at(head.len() + bare.len());
        assert_eq!(first, format!("{head}{bare}"));
        assert!(
            second.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"),
            "{second}"
        );
    }
}
