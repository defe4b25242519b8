-- The schema Base.metadata.create_all made before migrations existed (main at dfab9a2),
-- for sqlite: what a database of that time looks like. Generated once; never edit.

CREATE TABLE caregivers (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	phone VARCHAR(32) NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	district VARCHAR(64) NOT NULL, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_caregivers_district ON caregivers (district);

CREATE TABLE dead_letters (
	id INTEGER NOT NULL, 
	topic VARCHAR(512) NOT NULL, 
	payload BLOB NOT NULL, 
	reason TEXT NOT NULL, 
	received_at DATETIME NOT NULL, 
	details JSON, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_dead_letters_received_at ON dead_letters (received_at);

CREATE TABLE seen_messages (
	message_id VARCHAR(32) NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	received_at DATETIME NOT NULL, 
	PRIMARY KEY (message_id)
);

CREATE TABLE households (
	id VARCHAR(64) NOT NULL, 
	district VARCHAR(64) NOT NULL, 
	resident_name VARCHAR(100) NOT NULL, 
	address VARCHAR(300) NOT NULL, 
	latitude FLOAT, 
	longitude FLOAT, 
	guardian_name VARCHAR(100), 
	guardian_phone VARCHAR(32), 
	guardian_email VARCHAR(254), 
	silence_period_h FLOAT NOT NULL, 
	risk_level VARCHAR(16) NOT NULL, 
	caregiver_id INTEGER, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(caregiver_id) REFERENCES caregivers (id)
);

CREATE INDEX ix_households_district ON households (district);

CREATE TABLE devices (
	id VARCHAR(64) NOT NULL, 
	household_id VARCHAR(64) NOT NULL, 
	online BOOLEAN NOT NULL, 
	state_changed_at DATETIME, 
	last_seen_at DATETIME, 
	last_heartbeat_at DATETIME, 
	last_life_sign_at DATETIME, 
	agent_version VARCHAR(32) NOT NULL, 
	last_seq INTEGER NOT NULL, 
	last_outbox_depth INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES households (id)
);

CREATE INDEX ix_devices_household_id ON devices (household_id);

CREATE TABLE dispatches (
	id INTEGER NOT NULL, 
	household_id VARCHAR(64) NOT NULL, 
	caregiver_id INTEGER, 
	reason VARCHAR(16) NOT NULL, 
	priority VARCHAR(16) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	sos_message_id VARCHAR(32), 
	created_at DATETIME NOT NULL, 
	acknowledged_at DATETIME, 
	acknowledged_by VARCHAR(100), 
	resolved_at DATETIME, 
	outcome VARCHAR(32), 
	note TEXT, 
	cancelled_by_resident_at DATETIME, 
	escalation_level INTEGER NOT NULL, 
	next_escalation_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES households (id), 
	FOREIGN KEY(caregiver_id) REFERENCES caregivers (id), 
	UNIQUE (sos_message_id)
);

CREATE INDEX ix_dispatches_household_id ON dispatches (household_id);

CREATE INDEX ix_dispatches_status ON dispatches (status);

CREATE TABLE events (
	id INTEGER NOT NULL, 
	message_id VARCHAR(32) NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	household_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	source VARCHAR(16), 
	phrase VARCHAR(64), 
	sos_id VARCHAR(32), 
	device_ts DATETIME NOT NULL, 
	received_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (message_id), 
	FOREIGN KEY(device_id) REFERENCES devices (id), 
	FOREIGN KEY(household_id) REFERENCES households (id)
);

CREATE INDEX ix_events_device_id ON events (device_id);

CREATE INDEX ix_events_household_id ON events (household_id);

CREATE TABLE heartbeats (
	id INTEGER NOT NULL, 
	message_id VARCHAR(32) NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	device_ts DATETIME NOT NULL, 
	received_at DATETIME NOT NULL, 
	seq INTEGER NOT NULL, 
	motion_count INTEGER NOT NULL, 
	speech_s FLOAT NOT NULL, 
	wake_word_count INTEGER NOT NULL, 
	interactions INTEGER NOT NULL, 
	button_presses INTEGER NOT NULL, 
	uptime_s FLOAT NOT NULL, 
	audio_overruns INTEGER NOT NULL, 
	outbox_depth INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (message_id), 
	FOREIGN KEY(device_id) REFERENCES devices (id)
);

CREATE INDEX ix_heartbeats_device_ts ON heartbeats (device_id, device_ts);

CREATE TABLE notifications (
	id INTEGER NOT NULL, 
	dispatch_id INTEGER NOT NULL, 
	channel VARCHAR(8) NOT NULL, 
	purpose VARCHAR(32) NOT NULL, 
	recipient_role VARCHAR(16) NOT NULL, 
	recipient VARCHAR(254) NOT NULL, 
	subject VARCHAR(200) NOT NULL, 
	body TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	sent_at DATETIME, 
	last_error TEXT, 
	PRIMARY KEY (id), 
	UNIQUE (dispatch_id, channel, recipient, purpose), 
	FOREIGN KEY(dispatch_id) REFERENCES dispatches (id)
);

CREATE INDEX ix_notifications_dispatch_id ON notifications (dispatch_id);

CREATE INDEX ix_notifications_status ON notifications (status);
