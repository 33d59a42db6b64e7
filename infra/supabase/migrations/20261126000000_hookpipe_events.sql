-- hookpipe's append-only events table: one row per event id, written exactly once by the worker
-- (INSERT ... ON CONFLICT (event_id) DO NOTHING). In its own schema so Supabase's Data API does
-- not expose it (only `public` is exposed by default).
create schema if not exists hookpipe;

create table if not exists hookpipe.events (
    event_id          text        primary key,
    source            text        not null,
    event_type        text        not null,
    received_at       timestamptz not null,
    content_type      text,
    payload           jsonb       not null,
    pubsub_message_id text,
    inserted_at       timestamptz not null default now()
);

create index if not exists events_source_received_at on hookpipe.events (source, received_at);

-- Row level security on, no policies: only the worker's role (which owns the table) and
-- service roles that bypass RLS can read or write.
alter table hookpipe.events enable row level security;
