-- `hookpipe trace` (docs/operations.md) looks events up by what an operator has in hand: an event
-- id (the primary key), a Pub/Sub message id, or a LeadProsper lead's request uuid (every status
-- event of that lead). Each is an index, so a trace never scans a table. On a large events table
-- this takes a write lock while it builds: apply it in a quiet minute (the spool keeps webhooks
-- meanwhile), or build the same indexes beforehand with CREATE INDEX CONCURRENTLY.
create index if not exists events_pubsub_message_id on hookpipe.events (pubsub_message_id);
create index if not exists events_leadprosper_request_uuid
    on hookpipe.events ((payload ->> 'lp_request_uuid'))
    where source = 'leadprosper';
create index if not exists dead_letters_original_message_id
    on hookpipe.dead_letters (original_message_id);
-- `hookpipe trace --recent` without --source: the newest events, and the newest marked ones.
create index if not exists events_received_at on hookpipe.events (received_at);
create index if not exists events_with_problems_received_at on hookpipe.events (received_at)
    where problems is not null;
