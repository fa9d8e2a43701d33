-- The message listings (GET /messages, GET /users/<id>/messages) read newest occasion
-- first, by (occasion_date, id): this index serves that order in every partition,
-- so a page, and the page after a cursor, reads about page_size rows instead of
-- sorting a month of greetings.
CREATE INDEX message_logs_listing_idx ON message_logs (occasion_date, id);
