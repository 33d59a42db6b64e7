-- The dead-letter archive (docs/delivery.md, "The dead-letter archive"): every message on the
-- dead-letter topic, whoever put it there (the worker, or Pub/Sub after max delivery attempts),
-- kept beyond the subscription's 7-day retention. Written once per dead-lettering by the worker's
-- archive endpoint (ON CONFLICT (dead_letter_id) DO NOTHING); `hookpipe dlq replay --from-archive`
-- replays from here and stamps replayed_at.
create table if not exists hookpipe.dead_letters (
    dead_letter_id      text        primary key,  -- the message's id on the dead-letter topic
    event_id            text,                     -- ce-id, when it is a hookpipe event
    source              text,                     -- from ce-source
    error_class         text        not null,     -- hookpipe-error-class, or MaxDeliveryAttempts
    reason              text        not null,     -- hookpipe-error-message, or Pub/Sub's count
    delivery_attempts   integer,
    first_failure_time  timestamptz,
    dead_lettered_at    timestamptz not null,     -- publish time on the dead-letter topic
    original_message_id text,
    attributes          jsonb       not null,     -- every attribute, as delivered
    data                bytea       not null,     -- the message data, byte for byte
    archived_at         timestamptz not null default now(),
    replay_count        integer     not null default 0,
    replayed_at         timestamptz
);

create index if not exists dead_letters_dead_lettered_at on hookpipe.dead_letters (dead_lettered_at);
create index if not exists dead_letters_event_id on hookpipe.dead_letters (event_id);

alter table hookpipe.dead_letters enable row level security;
