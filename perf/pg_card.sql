-- perf/pg_card.sql: the card query of docs/api.md ("Card query") as a PostgreSQL function, for
-- perf/compare_postgres.sh. Its inputs are already normalized (perf/pg_rows.py for the rows,
-- perf/experiments/normalize_queries.py for the queries): insurer number, symbol (empty when
-- the card has none), number, branch (NULL when the query gives none), birthdate, date.
--
-- records:    one row per indexed snapshot row (perf/pg_rows.py), B-tree on the card key
--             (insurer_number, symbol, number, branch, birthdate) and on the person hash
-- unverified: the person hashes of X1 (one number on records whose birthdates or sexes
--             differ: identity-unverified, never "the same person")
--
-- card_query returns the validity and, for 1 and 2, the record (its columns and the insurer's
-- name), as shikaku's answer holds them: a row of columns, not JSON (less work than shikaku's
-- JSON answer, in PostgreSQL's favour).

DROP TYPE IF EXISTS card_answer CASCADE;
CREATE TYPE card_answer AS (validity int, insurer_number text, insurer_name text,
    symbol text, number text, branch text, relationship smallint, name text, name_kana text,
    sex smallint, birthdate date, qualification_date date, disqualification_date date,
    reason_of_loss text, copay_ratio smallint, limit_category text);

CREATE FUNCTION card_query(p_ins text, p_sym text, p_num text, p_br text, p_bd date,
    p_d date)
RETURNS card_answer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a card_answer;
    c records;
    first_branch text;
    branches_differ boolean := false;
    n_covering int := 0;
    covering records;
    before records;      -- began on or before the date, ended last (then began last)
    earliest records;    -- began after the date, began first
    persons bytea[] := '{}';
    chosen records;
BEGIN
    -- The candidates: the card's records of that birthdate (and branch, when given), one pass
    -- as shikaku's card_in does: branch check, covering count, nearest before.
    FOR c IN SELECT * FROM records r
        WHERE r.insurer_number = p_ins AND r.symbol = p_sym AND r.number = p_num
          AND (p_br IS NULL OR r.branch = p_br) AND r.birthdate = p_bd
    LOOP
        IF first_branch IS NULL THEN
            first_branch := c.branch;
        ELSIF c.branch <> first_branch THEN
            branches_differ := true;
        END IF;
        IF c.qualification_date <= p_d
           AND (c.disqualification_date IS NULL OR p_d < c.disqualification_date) THEN
            n_covering := n_covering + 1;
            IF covering IS NULL THEN covering := c; END IF;
        END IF;
        IF c.qualification_date <= p_d THEN
            IF before IS NULL
               OR (coalesce(c.disqualification_date, 'infinity'), c.qualification_date)
                > (coalesce(before.disqualification_date, 'infinity'), before.qualification_date)
            THEN
                before := c;
            END IF;
        ELSIF earliest IS NULL OR c.qualification_date < earliest.qualification_date THEN
            earliest := c;
        END IF;
        IF c.person IS NOT NULL THEN persons := persons || c.person; END IF;
    END LOOP;
    IF first_branch IS NULL THEN
        a.validity := 4; RETURN a;                    -- no candidate
    END IF;
    IF branches_differ OR n_covering > 1 THEN
        a.validity := 5; RETURN a;                    -- several branches or records
    END IF;
    IF n_covering = 1 THEN
        a.validity := 1; chosen := covering;
    ELSIF cardinality(persons) > 0 AND EXISTS (
        -- the same person (not identity-unverified) covered by another record on the date
        SELECT 1 FROM records o
        WHERE o.person = ANY (persons)
          AND o.qualification_date <= p_d
          AND (o.disqualification_date IS NULL OR p_d < o.disqualification_date)
          AND NOT EXISTS (SELECT 1 FROM unverified u WHERE u.person = o.person))
    THEN
        a.validity := 3; RETURN a;
    ELSE
        a.validity := 2; chosen := coalesce(before, earliest);
    END IF;
    a := ROW(a.validity, chosen.insurer_number,
        (SELECT i.insurer_name FROM insurers i WHERE i.insurer_number = chosen.insurer_number),
        nullif(chosen.symbol, ''), chosen.number, chosen.branch, chosen.relationship,
        chosen.name, chosen.name_kana, chosen.sex, chosen.birthdate, chosen.qualification_date,
        chosen.disqualification_date, chosen.reason_of_loss, chosen.copay_ratio,
        chosen.limit_category);
    RETURN a;
END
$$;

-- The workload's card queries, numbered from 1, for pgbench (which cannot read parameters
-- from a file): card_check(i) answers query i and raises an error when the validity is not the
-- expected one, which aborts that pgbench client and fails the run: every answer is checked.
CREATE FUNCTION card_check(p_i int)
RETURNS card_answer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q workload;
    a card_answer;
BEGIN
    SELECT * INTO STRICT q FROM workload w WHERE w.i = p_i;
    a := card_query(q.insurer_number, q.symbol, q.number, q.branch, q.birthdate, q.date);
    IF a.validity <> q.expected THEN
        RAISE EXCEPTION 'card query % answered validity %, expected %', p_i, a.validity,
            q.expected;
    END IF;
    RETURN a;
END
$$;

-- The harness alone: what card_check does besides the card query (the call, the workload row),
-- so that card_check's cost less this one is the card query's own work.
CREATE FUNCTION workload_row(p_i int)
RETURNS workload
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q workload;
BEGIN
    SELECT * INTO STRICT q FROM workload w WHERE w.i = p_i;
    RETURN q;
END
$$;
