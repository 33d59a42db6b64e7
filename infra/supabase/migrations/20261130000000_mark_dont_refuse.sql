-- Mark, don't refuse (docs/delivery.md): every accepted event lands, marked where it could not be
-- understood. Additive only, so an older worker keeps writing while a newer one rolls out.
--
-- problems: [{"field", "value", "reason"}, …] for each value that did not convert or could not be
--           stored as sent; NULL when there were none.
-- body:     the original bytes, kept only for a body that did not parse (then payload is NULL).
alter table hookpipe.events add column if not exists problems jsonb;
alter table hookpipe.events add column if not exists body bytea;
alter table hookpipe.events alter column payload drop not null;
alter table hookpipe.events drop constraint if exists events_payload_or_body;
alter table hookpipe.events add constraint events_payload_or_body
    check (payload is not null or body is not null);

create index if not exists events_with_problems on hookpipe.events (source, received_at)
    where problems is not null;

-- Current state is a fold over the values that converted (docs/delivery.md): each column keeps the
-- value of the newest event in which it converted, so it needs its own version:
-- {"<column>": ["<version>", "<event_id>"]}; a column missing there was never set. Rows from
-- before this migration got every column from their latest event: backfill that.
alter table hookpipe.leadprosper_leads
    add column if not exists column_versions jsonb not null default '{}'::jsonb;
update hookpipe.leadprosper_leads
   set column_versions = (
       select jsonb_object_agg(c, jsonb_build_array(event_time, event_id))
         from unnest(array['status', 'campaign_id', 'purchase_price', 'sold_price']) as c)
 where column_versions = '{}'::jsonb;
