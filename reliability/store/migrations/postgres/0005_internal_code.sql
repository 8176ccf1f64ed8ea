-- A row whose handling raised an unexpected error is dead-lettered with code INTERNAL after its
-- retries (reliability.errors.ErrorCode.INTERNAL): the category list grows by one.
ALTER TABLE n8n_dlq DROP CONSTRAINT n8n_dlq_error_code_check;
ALTER TABLE n8n_dlq ADD CONSTRAINT n8n_dlq_error_code_check CHECK (
  error_code IN (
    'TIMEOUT', 'CONNECTION', 'HTTP_5XX', 'HTTP_429', 'HTTP_4XX',
    'CIRCUIT_OPEN', 'QUOTA', 'INVALID_PAYLOAD', 'RETRY_BUDGET', 'INTERNAL'
  )
) NOT VALID;
