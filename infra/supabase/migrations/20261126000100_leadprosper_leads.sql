-- LeadProsper's current state: one row per lead, its latest status and prices. The worker
-- upserts it in the same transaction as hookpipe.events, and only when the incoming event is
-- newer (event_time, then event_id), so redeliveries in any order never move a lead backwards.
create table if not exists hookpipe.leadprosper_leads (
    lead_id        text        primary key,
    status         text,
    campaign_id    text,
    purchase_price numeric,
    sold_price     numeric,
    event_time     timestamptz not null,  -- lp_timestamp, or when ingest accepted the event
    event_id       text        not null,
    updated_at     timestamptz not null default now()
);

alter table hookpipe.leadprosper_leads enable row level security;
