/*
 * http_parse.h - an incremental parser for the head of an HTTP/1.1 request
 * (request line and header section), and a decoder for chunked request
 * bodies, used by servers/http.
 *
 * Pure: no I/O, no allocation, no global state.  It reads only bytes
 * [0, len) of the buffer it is given, on any input, and is meant to be
 * fuzzed.
 *
 * Use: http_parser_init(), then http_parse() on the bytes received so far
 * for this request, starting with the request's first byte.  Call it again
 * with more bytes as they arrive: the buffer may have moved (a caller may
 * compact it), but its first bytes must be the ones given before.  Work
 * already done is not repeated: each call looks only at the new bytes (and
 * at the line they complete).  The result:
 *   0            more bytes are needed;
 *   n > 0        the head is complete and is the first n bytes of the
 *                buffer; *req describes it (its pointers point into the
 *                buffer of this call).  The body, req->content_length bytes,
 *                follows.  Call http_parser_init() before the next request;
 *   -status      the request is refused: answer with that status and close
 *                the connection.  Errors are sticky: later calls return the
 *                same value until http_parser_init().
 *
 * Limits and errors:
 *   - The head, from the first byte (including empty lines before the
 *     request line) to the LF of the empty line that ends it, is at most
 *     HTTP_MAX_HEAD bytes; more gives 431 (so does a request line that long).
 *   - Content-Length above HTTP_MAX_BODY gives 413.
 *   - 400 for anything malformed: lines must end with CRLF (a bare LF or a
 *     bare CR is refused, which RFC 9112 allows; empty lines (CRLF) before
 *     the request line are skipped, as it recommends); the request line
 *     must be exactly "method SP target SP HTTP/d.d"; a method and a field
 *     name are tokens; a target has only the characters a URI may have
 *     (printable ASCII except "#<>\^`{|}" and the double quote) and is in
 *     origin form ("/..."), absolute form ("scheme://authority/..."),
 *     asterisk form ("*", OPTIONS only) or authority form (CONNECT only);
 *     field values have no control characters except HTAB; obs-fold (a
 *     line starting with SP or HTAB) is refused; no space before the colon;
 *     Content-Length must be digits only and appear once (a repeated one is
 *     refused even if equal); Content-Length together with
 *     Transfer-Encoding is refused; HTTP/1.1 requires exactly one Host (at
 *     most one for HTTP/1.0), whose value has only the characters of a
 *     host and port.
 *   - 505 for a version other than HTTP/1.x ("HTTP/1.2" and later minor
 *     versions are handled as HTTP/1.1, as RFC 9110 asks).
 *   - 501 for a method that is not one of RFC 9110's and PATCH (methods are
 *     case-sensitive: "get" is unknown), and for a transfer coding other
 *     than chunked (before it: "gzip, chunked").
 *   - Transfer-Encoding: the list of codings (several field lines add to
 *     one list) must end with chunked, once: otherwise, or in an HTTP/1.0
 *     request, or with Content-Length too, 400 (RFC 9112, 6.1 and 6.3).
 *     "Transfer-Encoding: chunked" sets req->chunked; the body is then read
 *     with http_chunked_feed() below.
 *   - 417 for an Expect other than "100-continue" in an HTTP/1.1 request
 *     (HTTP/1.0 requests' Expect fields are ignored, as RFC 9110 says).
 * Whether a known method is allowed on a resource is the server's business
 * (servers/http answers 405).
 * A request line whose method can no longer be valid (a byte that is not
 * a token character, as the first bytes of a TLS ClientHello) gives 400
 * before its line feed arrives.
 * Checks run in the order of the bytes: the first offending line decides;
 * checks that need the whole header section (Host, Content-Length with
 * Transfer-Encoding, then 400 and 501 for Transfer-Encoding, 413, 417, in
 * this order)
 * run at its end.  So feeding a request byte by byte gives the same result
 * as feeding it at once.
 */
#ifndef DEMOS_HTTP_PARSE_H
#define DEMOS_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEAD 8192
#define HTTP_MAX_BODY ((uint64_t)1 << 20)

enum http_method {
  HTTP_GET = 1,
  HTTP_HEAD,
  HTTP_POST,
  HTTP_PUT,
  HTTP_DELETE,
  HTTP_CONNECT,
  HTTP_OPTIONS,
  HTTP_TRACE,
  HTTP_PATCH,
};

typedef struct http_request {
  int method;  /* enum http_method */
  int version; /* 10 (HTTP/1.0) or 11 (HTTP/1.1 and later 1.x) */
  /* The request target as received. */
  const char *target;
  size_t target_len;
  /* Its path, without the query: for origin form the target up to '?',
   * for absolute form what follows the authority (empty: "/"), for
   * asterisk and authority form empty. */
  const char *path;
  size_t path_len;
  /* The Host field's value (trimmed), or NULL without one. */
  const char *host;
  size_t host_len;
  uint64_t content_length; /* 0 without Content-Length */
  size_t head_len;         /* bytes of the head, as returned */
  bool has_content_length;
  /* "Transfer-Encoding: chunked": the body follows in chunks, to be read
   * with http_chunked_feed() (content_length is 0). */
  bool chunked;
  /* Whether the connection may serve another request after this one:
   * HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
   * "Connection: keep-alive" (and no close). */
  bool keep_alive;
  /* "Expect: 100-continue" in an HTTP/1.1 request. */
  bool expect_continue;
} http_request;

/* The parser's state; treat it as opaque.  No pointers: it survives the
 * caller's buffer moving. */
typedef struct http_parser {
  uint32_t line;    /* offset of the line being looked at */
  uint32_t scanned; /* its bytes already searched for the LF */
  uint8_t stage;
  uint8_t method;
  uint8_t version;
  uint16_t flags;
  uint16_t status; /* of the error, once failed */
  uint16_t target_off, target_len;
  uint16_t path_off, path_len;
  uint16_t host_off, host_len;
  uint8_t hosts;
  uint64_t content_length;
} http_parser;

void http_parser_init(http_parser *p);

/* See above: 0 (need more), the head's length, or -status. */
int http_parse(http_parser *p, const char *buf, size_t len, http_request *req);

/* The method's name ("GET"), or "" for a value that is not a method. */
const char *http_method_name(int method);

/*
 * A chunked request body (RFC 9112, 7.1), decoded incrementally: after a
 * head with req->chunked, http_chunked_init(), then http_chunked_feed()
 * on the bytes that follow the head, in pieces of any size.  Each call
 * returns how many bytes of buf it used (the caller drops them and calls
 * again with the rest and what arrives next), or -status.  When a chunk's
 * data is among the bytes used, the call ends with that run and names it
 * (*data, *data_len point into buf; *data_len is 0 otherwise).  Once
 * http_chunked_done() is true the body has ended: the last byte used was
 * its final LF, and what follows is the next request.
 *
 * Limits and errors, with the head's conventions:
 *   - the sum of the chunk sizes is at most HTTP_MAX_BODY, as a
 *     Content-Length is; more gives 413 as soon as a size says so;
 *   - a size line (hex digits, optional extensions, which are ignored) is
 *     at most HTTP_MAX_CHUNK_LINE bytes; more gives 400;
 *   - the trailer section is at most HTTP_MAX_HEAD bytes (431); its fields
 *     are checked like header fields and otherwise ignored;
 *   - 400 for anything malformed: a size that is not hex, a missing or bare
 *     CR or LF, data longer than its size.
 * Errors are sticky until http_chunked_init().
 */
#define HTTP_MAX_CHUNK_LINE 4096

typedef struct http_chunked {
  uint64_t left;  /* data bytes left in the chunk, or its size so far */
  uint64_t total; /* data bytes of the chunks begun */
  uint32_t line;  /* bytes of the size line or trailer section so far */
  uint8_t state;
  uint16_t status; /* of the error, once failed */
} http_chunked;

void http_chunked_init(http_chunked *d);
ssize_t http_chunked_feed(http_chunked *d, const char *buf, size_t len,
                          const char **data, size_t *data_len);
bool http_chunked_done(const http_chunked *d);

#endif /* DEMOS_HTTP_PARSE_H */
