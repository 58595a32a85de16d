#pragma once
/*
 * Store: Redis for any product. Works with hiredis (which no other module
 * sees) and the scripts of lua/, which are embedded at build time, loaded
 * with SCRIPT LOAD on first use on a connection and run by EVALSHA; a
 * NOSCRIPT answer (Redis restarted, failed over, SCRIPT FLUSH) reloads the
 * script and runs it again (it did not run). Replies reach the caller as
 * struct cpn_redis_item, never as hiredis's types. The products' own calls
 * (key layouts, what a script's answer means) live with each product.
 *
 * A struct cpn_redis is one connection owned by one thread; it is never
 * shared. It connects lazily on first use and, after any I/O or protocol
 * error, is dropped and reconnected by the next call: a context is never
 * reused after an error. The pipe (struct cpn_redis_pipe, below) carries
 * the script calls of many threads over one connection of its own.
 *
 * Return codes of every call: 0 on success; -EIO when Redis cannot be
 * reached or the connection broke (for a call that was not @safe and went
 * out: it may have run), -EPROTO for an unexpected reply (an error reply
 * such as OOM or a script's own error included), -ENOMEM, -EINVAL (too many
 * arguments). The text is in @err (may be NULL).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpn/error.h"
#include "cpn/types.h"

struct cpn_redis_url {
        char host[256];
        int port;
        int db;
        char user[128];
        char password[256];
        char unix_path[256]; /* redis+unix:///path or unix:///path */
};

struct cpn_redis;

/* Parses redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N].
 * Returns 0 or CPN_INVALID. */
int cpn_redis_url_parse(struct cpn_redis_url *out, const char *url, struct cpn_error *err);

/* Creates an unconnected handle. @timeout_ms bounds connect and each reply.
 * @url is borrowed and must outlive the handle. */
int cpn_redis_new(struct cpn_redis **ret, const struct cpn_redis_url *url, long timeout_ms);
struct cpn_redis *cpn_redis_free(struct cpn_redis *r);

/* Connects if needed and PINGs. */
int cpn_redis_ping(struct cpn_redis *r, struct cpn_error *err);

/* ---- replies ---- */

#define CPN_SCRIPTS_MAX 32 /* embedded Lua files */
#define CPN_REDIS_ITEMS_MAX 32
#define CPN_REDIS_KV_MAX 13 /* keys + arguments of one script call */

enum cpn_redis_type { CPN_RV_NIL, CPN_RV_INT, CPN_RV_STR, CPN_RV_ARR, CPN_RV_ERR };

/* One value of a reply, borrowed for the callback it is handed to. */
struct cpn_redis_item {
        enum cpn_redis_type type;
        long long i;   /* INT; STR: its leading integer (0 if none); ARR: its length */
        const char *s; /* STR and ERR: NUL-terminated; else NULL */
        size_t len;
};

/* Gets a reply: for an array, its elements (an element that is itself an
 * array is one CPN_RV_ARR item), else the one value. A non-zero return is
 * handed back by the call that read the reply. */
typedef int (*cpn_redis_read_fn)(const struct cpn_redis_item *items, size_t n, void *ud);

/* A copy of a small reply for callers that keep it: the first
 * CPN_REDIS_VALUES_MAX items, strings cut to 127 bytes. */
#define CPN_REDIS_VALUES_MAX 8
struct cpn_redis_value {
        enum cpn_redis_type type;
        long long i;
        char s[128];
        size_t len;
};
struct cpn_redis_answer {
        size_t n;
        struct cpn_redis_value v[CPN_REDIS_VALUES_MAX];
};

/* ---- calls ---- */

/*
 * Runs one command (@argc strings of @argv, at most 1 + 512 + 2) and hands
 * its reply to @fn (may be NULL). @safe: the command may run twice (a read,
 * SADD, DEL, XDEL, an idempotent script); then, when a connection kept from
 * before turns out closed by the server, it goes once more on a new one.
 * An error reply is -EPROTO with its text.
 */
int cpn_redis_command(struct cpn_redis *r, bool safe, int argc, const char *const *argv, cpn_redis_read_fn fn,
                      void *ud, struct cpn_error *err);

/* cpn_redis_command for a command whose reply is an array of arrays or of
 * strings (XRANGE, SMEMBERS, SDIFF, ...): @fn gets each element in turn,
 * its own elements flattened one level (an XRANGE entry: id, field,
 * value, ...; a string: itself), at most CPN_REDIS_ITEMS_MAX of them. A
 * non-zero return of @fn stops the walk and is returned. Safe (a read). */
int cpn_redis_each(struct cpn_redis *r, int argc, const char *const *argv, cpn_redis_read_fn fn, void *ud,
                   struct cpn_error *err);

/* One command of a batch. */
struct cpn_redis_cmd {
        int argc;
        const char *const *argv;
};

/* Sends the @n commands in one pipelined round trip and hands each reply
 * to @fn in order (an error reply as a CPN_RV_ERR item: the others ran).
 * Every command must be safe to repeat: the batch goes once more on a new
 * connection when a kept one turns out closed. */
int cpn_redis_batch(struct cpn_redis *r, size_t n, const struct cpn_redis_cmd *cmds, cpn_redis_read_fn fn,
                    void *ud, struct cpn_error *err);

/*
 * Runs the embedded script @name (its file name under lua/ without the
 * product's folder, e.g. "reserve.lua") with @nkeys keys then @nargs
 * arguments from @kv (at most CPN_REDIS_KV_MAX together) and hands its
 * reply to @fn (may be NULL). @safe as for cpn_redis_command. *@sent (may
 * be NULL) becomes true once the call was handed to the socket: after a
 * failure from then on, the script may have run. Returns 0, what @fn
 * returned, -EIO, -EPROTO (an error reply, such as a script's own error:
 * its text in @err), -ENOENT (no such script).
 */
int cpn_redis_script_read(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs,
                          const char *const *kv, cpn_redis_read_fn fn, void *ud, bool *sent, struct cpn_error *err);

/* cpn_redis_script_read that copies the reply into @out. */
int cpn_redis_script(struct cpn_redis *r, const char *name, bool safe, int nkeys, int nargs, const char *const *kv,
                     struct cpn_redis_answer *out, bool *sent, struct cpn_error *err);

/* Calls @fn for every field of the hash @key (HSCAN: a field changed
 * meanwhile may be seen twice or not at all; strings borrowed for the
 * call). A non-zero return of @fn stops the walk and is returned. */
int cpn_redis_hash_each(struct cpn_redis *r, const char *key,
                        int (*fn)(const char *field, const char *value, void *ud), void *ud, struct cpn_error *err);

/*
 * ---- the pipe ----
 * Script calls of many threads over one connection. Calls queued by any
 * number of threads are written to Redis as one pipelined batch by the
 * pipe's own thread, which reads the answers in order and hands each to
 * its call's done(); Redis then runs a batch per read instead of one
 * script per read, and the process keeps one connection for them all
 * instead of one per thread. Owned by main; created before and freed
 * after every caller.
 *
 * Failures, call by call: a batch that could not be sent (no connection)
 * answers -EIO (nothing ran); a NOSCRIPT answer reloads the script and
 * sends the call again (it did not run). A call whose script went out
 * without an answer coming back may have run: with @ask_again it is sent
 * once more on a new connection (the product says its script's second
 * answer is true of the first), else, or when that fails too, it answers
 * CPN_UNKNOWN.
 *
 * When Redis cannot be reached or stops answering (a connect fails, a
 * read times out), the pipe is "down": calls already queued and every new
 * one are refused at once with -EIO, never sent, instead of each waiting
 * out timeouts behind the stalled batch. The pipe thread probes (connects
 * and PINGs) every 100 ms and lets calls through again when that works. A
 * closed connection alone (CLIENT KILL, a restart) does not trip it: the
 * next batch reconnects.
 */
struct cpn_redis_pipe;

/* One script call. The caller owns its memory and fills the first block;
 * the rest is the pipe's. */
struct cpn_redis_call {
        const char *script;                 /* embedded file name */
        int nkeys, nargs;
        const char *kv[CPN_REDIS_KV_MAX];   /* borrowed until done() */
        bool ask_again;                     /* see above */
        struct cpn_error *err;              /* never NULL; set before done(ret != 0) */
        /* Runs on the pipe's thread with 0 and the reply (@items borrowed
         * for the call), -EIO (not sent), -EPROTO (an error reply; not
         * asked again), -ENOMEM, -ENOENT (no such script) or CPN_UNKNOWN
         * (it may have run). From its return on the pipe no longer touches
         * @c, so done() may hand @c back to a thread that frees it; it must
         * not block on I/O (every later call waits for it). */
        void (*done)(struct cpn_redis_call *c, int ret, const struct cpn_redis_item *items, size_t n);
        void *ud;
        /* the pipe's */
        struct cpn_redis_call *next;
        int script_idx;                     /* index in the embedded list */
        bool asked_again, reloaded;
        struct cpn_error first;
};

/* Starts the pipe's thread; it connects on the first call (and again after
 * any error). @timeout_ms bounds connect and each read and write. Returns
 * 0, -ENOMEM or a negative errno from pthread_create (text in @err). */
int cpn_redis_pipe_new(struct cpn_redis_pipe **ret, const struct cpn_redis_url *url, long timeout_ms,
                       struct cpn_error *err);
/* Answers every call already queued, then stops the thread. Accepts NULL. */
struct cpn_redis_pipe *cpn_redis_pipe_free(struct cpn_redis_pipe *p);
/*
 * Queues @c; its done() follows after at most three attempts of connect,
 * write and read, each syscall bounded by @timeout_ms, once the batches
 * queued before it are through. So with Redis stalled (SIGSTOP) a call
 * already sent waits about two timeouts (then CPN_UNKNOWN), one not sent
 * at most about one. Returns 0, or without queueing (done() is not called)
 * -EINVAL (too many keys and arguments), -ENOENT (no such script), -EIO
 * (the pipe is down; not sent) or -ESHUTDOWN (the pipe is being freed),
 * text in @c->err. Any thread.
 */
int cpn_redis_pipe_submit(struct cpn_redis_pipe *p, struct cpn_redis_call *c);
/*
 * One script call through the pipe, waited for: what a request thread
 * uses when it has nothing else to do meanwhile. @fn (may be NULL) reads
 * the reply on the pipe's thread and must only copy out of it. Returns 0,
 * @fn's non-zero return, or as submit and done() above (-EIO: not sent;
 * CPN_UNKNOWN: it may have run). @kv is borrowed until the return.
 */
int cpn_redis_pipe_call(struct cpn_redis_pipe *p, const char *script, int nkeys, int nargs, const char *const *kv,
                        bool ask_again, cpn_redis_read_fn fn, void *ud, struct cpn_error *err);
struct cpn_redis_pipe_stats {
        uint64_t batches;     /* written so far */
        uint64_t calls;       /* carried by them: calls/batches is the mean batch */
        uint64_t asked_again; /* calls whose answer was lost and that were sent again */
        uint64_t refused;     /* calls refused unsent while Redis was not answering */
        bool down;            /* Redis not answering now: calls are refused */
};
/* Any thread. */
void cpn_redis_pipe_stats(struct cpn_redis_pipe *p, struct cpn_redis_pipe_stats *out);
