-- A small, fixed set of users for trying the service by hand:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/seed.sql
-- One user per awkward zone (+05:45, +13, +14, -10, -11, -12, half-hour DST), a
-- Feb 29 birthday and an anniversary-only user. Safe to run twice: a live user with
-- the same email is left alone. Their greetings are planned by the scheduler;
-- `flask db seed` loads large volumes with message history instead.

INSERT INTO users (first_name, last_name, email, timezone, birthday_date, anniversary_date,
                   location_city, location_country)
VALUES
    ('Ada', 'Lovelace', 'ada.lovelace@example.com', 'Europe/London', '1985-12-10', NULL, 'London', 'United Kingdom'),
    ('Grace', 'Hopper', 'grace.hopper@example.com', 'America/New_York', '1956-12-09', '1980-06-15', 'New York', 'United States'),
    ('Alan', 'Turing', 'alan.turing@example.com', 'Europe/London', '1962-06-23', NULL, 'Wilmslow', 'United Kingdom'),
    ('Tenzing', 'Norgay', 'tenzing.norgay@example.com', 'Asia/Kathmandu', '1964-05-29', NULL, 'Kathmandu', 'Nepal'),
    ('Salote', 'Tupou', 'salote.tupou@example.com', 'Pacific/Tongatapu', '1960-03-13', NULL, 'Nukuʻalofa', 'Tonga'),
    ('Teuea', 'Toatu', 'teuea.toatu@example.com', 'Pacific/Kiritimati', '1988-01-01', '2015-07-04', 'Kiritimati', 'Kiribati'),
    ('Duke', 'Kahanamoku', 'duke.kahanamoku@example.com', 'Pacific/Honolulu', '1990-08-24', NULL, 'Honolulu', 'United States'),
    ('Sina', 'Faleolo', 'sina.faleolo@example.com', 'Pacific/Pago_Pago', '1992-02-29', NULL, 'Pago Pago', 'American Samoa'),
    ('Baker', 'Howland', 'baker.howland@example.com', 'Etc/GMT+12', '1985-10-10', NULL, NULL, NULL),
    ('Lord', 'Howe', 'lord.howe@example.com', 'Australia/Lord_Howe', '1970-04-05', NULL, 'Lord Howe Island', 'Australia'),
    ('Newfie', 'Smith', 'newfie.smith@example.com', 'America/St_Johns', NULL, '2001-11-03', 'St. John''s', 'Canada'),
    ('Priya', 'Sharma', 'priya.sharma@example.com', 'Asia/Kolkata', '1995-11-26', NULL, 'Bengaluru', 'India')
ON CONFLICT (lower(email)) WHERE deleted_at IS NULL DO NOTHING;

SELECT count(*) AS live_users FROM users WHERE deleted_at IS NULL;
