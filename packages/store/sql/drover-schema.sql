-- drover's own tables in the validity DB. Nix 2.8 ignores tables it does not know, so a
-- store shared with Nix keeps them; every statement is idempotent and runs at each open.

-- Paths whose build failed permanently (as Nix <= 2.0 had): drover-build skips them until
-- `drover-store failed --clear` forgets them. Plain paths, not ValidPaths ids: a failed
-- output is never valid.
create table if not exists FailedPaths (
    path text primary key not null,
    time integer not null
);
