/* Timers (call_later/call_at) on a min-heap keyed by (deadline, sequence). */
#include "internal.h"

#include <stdlib.h>

static bool earlier(const tapio_handle *a, const tapio_handle *b)
{
    double at = tapio__deadline(a), bt = tapio__deadline(b);
    return at < bt || (at == bt && a->seq < b->seq);
}

static void place(tapio__heap *heap, size_t i, tapio_handle *h)
{
    heap->items[i] = h;
    h->heap_index = i;
}

static void sift_up(tapio__heap *heap, size_t i)
{
    tapio_handle *h = heap->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(h, heap->items[parent]))
            break;
        place(heap, i, heap->items[parent]);
        i = parent;
    }
    place(heap, i, h);
}

static void sift_down(tapio__heap *heap, size_t i)
{
    tapio_handle *h = heap->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= heap->len)
            break;
        if (child + 1 < heap->len &&
            earlier(heap->items[child + 1], heap->items[child]))
            child++;
        if (!earlier(heap->items[child], h))
            break;
        place(heap, i, heap->items[child]);
        i = child;
    }
    place(heap, i, h);
}

int tapio__heap_push(tapio__heap *heap, tapio_handle *h)
{
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 64;
        tapio_handle **items = realloc(heap->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        heap->items = items;
        heap->cap = cap;
    }
    heap->items[heap->len] = h;
    sift_up(heap, heap->len++);
    return 0;
}

/* Remove the item at index i by moving the last item into its place. */
static void remove_at(tapio__heap *heap, size_t i)
{
    tapio_handle *last = heap->items[--heap->len];
    if (i == heap->len)
        return;
    place(heap, i, last);
    if (i > 0 && earlier(last, heap->items[(i - 1) / 2]))
        sift_up(heap, i);
    else
        sift_down(heap, i);
}

tapio_handle *tapio__heap_pop(tapio__heap *heap)
{
    if (!heap->len)
        return NULL;
    tapio_handle *top = heap->items[0];
    remove_at(heap, 0);
    return top;
}

void tapio__heap_remove(tapio__heap *heap, tapio_handle *h)
{
    remove_at(heap, h->heap_index);
}

void tapio__heap_free(tapio__heap *heap)
{
    free(heap->items);
    heap->items = NULL;
    heap->len = heap->cap = 0;
}

tapio_handle *tapio_call_at(tapio_loop *loop, double when, tapio_callback cb,
                            void *arg)
{
    tapio_handle *h = tapio__handle_new(loop, cb, arg);
    if (!h)
        return NULL;
    h->when = when;
    h->seq = loop->timer_seq++;
    if (tapio__heap_push(&loop->timers, h)) {
        tapio_handle_unref(h);
        return NULL;
    }
    h->flags = TAPIO__H_IN_HEAP;
    return h;
}

tapio_handle *tapio_call_later(tapio_loop *loop, double delay,
                               tapio_callback cb, void *arg)
{
    if (delay < 0)
        delay = 0;
    return tapio_call_at(loop, tapio__clock_now() + delay, cb, arg);
}

/* A cancelled timer leaves the heap at once (O(log n)); a cancelled
 * call_soon handle is skipped when the ready queue reaches it. */
bool tapio_handle_cancel(tapio_handle *h)
{
    bool pending = !(h->flags & TAPIO__H_CANCELLED) &&
                   (h->flags & (TAPIO__H_IN_HEAP | TAPIO__H_QUEUED));
    h->flags |= TAPIO__H_CANCELLED;
    if (h->flags & TAPIO__H_IN_HEAP) {
        tapio__heap_remove(&h->loop->timers, h);
        h->flags &= ~TAPIO__H_IN_HEAP;
        tapio_handle_unref(h);
    }
    return pending;
}
