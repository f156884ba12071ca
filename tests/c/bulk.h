/* bulk.h — a 100 MiB transfer for the tests: a sender that writes while
 * its transport lets it (pause_writing/resume_writing) and a receiver
 * that hashes what arrives, so both ends can be compared without keeping
 * the bytes. */
#ifndef TAPIO_TEST_BULK_H
#define TAPIO_TEST_BULK_H

#include "harness.h"

#define BULK_TOTAL ((size_t)100 * 1024 * 1024)
#define BULK_CHUNK ((size_t)64 * 1024)

typedef struct bulk_sender {
    conn c;
    bool close_at_end;   /* close() after the last byte, else write_eof() */
    const unsigned char *src;
    size_t sent;
    size_t max_buffered; /* the largest write buffer seen after a write */
    uint64_t hash;
} bulk_sender;

typedef struct bulk_receiver {
    conn c;
    size_t total;
    uint64_t hash;
} bulk_receiver;

/* A sender for bulk_sender_protocol (freed with the test). */
bulk_sender *bulk_sender_new(bool close_at_end);
extern const tapio_protocol bulk_sender_protocol;

/* A server's protocol factory: arg is a bulk_receiver ** that must be NULL
 * and receives the one connection's receiver. */
const tapio_protocol *bulk_receiver_factory(tapio_server *s, void *arg,
                                            void **user);

/* Both ended cleanly and every byte arrived as sent, flow control having
 * paused the sender and kept its write buffer at most `max_buffered`. */
void bulk_check(const bulk_sender *s, const bulk_receiver *r,
                size_t max_buffered);

#endif
