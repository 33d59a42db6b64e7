-- How hookpipe learnt of each event (docs/reconcile.md): 'webhook' when ingest received it,
-- 'reconcile' when `hookpipe reconcile` synthesized it from the sender's own API. Additive, with a
-- default, so an older worker keeps writing while a newer one rolls out.
alter table hookpipe.events add column if not exists origin text not null default 'webhook';
alter table hookpipe.events drop constraint if exists events_origin;
alter table hookpipe.events add constraint events_origin check (origin in ('webhook', 'reconcile'));
