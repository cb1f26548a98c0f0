-- A schema-5 journal written by fhir-edge at main f579409 (the last version before schema 6), dumped
-- with sqlite3 .dump: exports in every state, import jobs of two attempts, requests, a tombstone.
-- Made by make_schema5.cpp (beside this file); the 5 -> 6 migration test loads it.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE exports(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  pipeline TEXT NOT NULL,
  source_path TEXT NOT NULL,
  digest TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  files INTEGER NOT NULL DEFAULT 0,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  bytes_source INTEGER NOT NULL DEFAULT 0,
  bytes_spooled INTEGER NOT NULL DEFAULT 0,
  bytes_uploaded INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER, parked_from TEXT, parked_reason TEXT NOT NULL DEFAULT '', import_attempt INTEGER NOT NULL DEFAULT 1,
  UNIQUE(pipeline, source_path, digest)
);
INSERT INTO exports VALUES(1,'discovered','p','/in/discovered','sha256:discovered',1,'discovered','',2,0,0,400,0,0,1796511716142,1796511716142,NULL,NULL,'',1);
INSERT INTO exports VALUES(2,'spooling','p','/in/spooling','sha256:spooling',1,'spooling','',2,10,2,400,60,0,1796511716142,1796511716200,NULL,NULL,'',1);
INSERT INTO exports VALUES(3,'uploading','p','/in/uploading','sha256:uploading',1,'uploading','SlowDown (retrying)',2,10,2,400,60,0,1796511716225,1796511716316,NULL,NULL,'',1);
INSERT INTO exports VALUES(4,'parked-upload','p','/in/parked-upload','sha256:parked-upload',1,'parked','AccessDenied on PutObject',2,10,2,400,60,0,1796511716328,1796511716440,NULL,'uploading','AccessDenied on PutObject',1);
INSERT INTO exports VALUES(5,'uploaded','p','/in/uploaded','sha256:uploaded',1,'uploaded','',2,10,2,400,60,260,1796511716444,1796511716572,NULL,NULL,'',1);
INSERT INTO exports VALUES(6,'starting','p','/in/starting','sha256:starting',1,'import_starting','ThrottlingException (retrying later with the same token)',2,10,2,400,60,260,1796511716581,1796511716686,NULL,NULL,'',1);
INSERT INTO exports VALUES(7,'importing','p','/in/importing','sha256:importing',1,'importing','',2,10,2,400,60,260,1796511716686,1796511716860,NULL,NULL,'',1);
INSERT INTO exports VALUES(8,'imported','p','/in/imported','sha256:imported',1,'imported','',2,10,2,400,60,260,1796511716861,1796511717092,1796511717092,NULL,'',1);
INSERT INTO exports VALUES(9,'failed-import','p','/in/failed-import','sha256:failed-import',1,'import_failed','job FAILED: bad input',2,10,2,400,60,260,1796511717092,1796511717121,1796511717121,NULL,'',1);
INSERT INTO exports VALUES(10,'retried','p','/in/retried','sha256:retried',1,'import_starting','',2,10,2,400,60,260,1796511717124,1796511717193,NULL,NULL,'',2);
INSERT INTO exports VALUES(11,'nothing','p','/in/nothing','sha256:nothing',1,'nothing_to_import','no file has a valid resource',2,10,2,400,60,260,1796511717194,1796511717208,1796511717208,NULL,'',1);
INSERT INTO exports VALUES(12,'parked-import','p','/in/parked-import','sha256:parked-import',1,'parked','ResourceNotFoundException: job vanished',2,10,2,400,60,260,1796511717208,1796511717231,NULL,'importing','ResourceNotFoundException: job vanished',1);
INSERT INTO exports VALUES(13,'given-up','p','/in/given-up','sha256:given-up',1,'failed','on_invalid: fail-export',2,0,0,400,0,0,1796511717231,1796511717232,1796511717232,NULL,'',1);
INSERT INTO exports VALUES(14,'superseded','p','/in/superseded','sha256:superseded',1,'superseded','',2,0,0,400,0,0,1796511717235,1796511717237,1796511717237,NULL,'',1);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  dev INTEGER NOT NULL,
  state TEXT NOT NULL,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  bytes_uncompressed INTEGER NOT NULL DEFAULT 0,
  bytes_spooled INTEGER NOT NULL DEFAULT 0,
  checksum TEXT NOT NULL DEFAULT '',
  import_key TEXT NOT NULL DEFAULT '',
  import_upload_id TEXT NOT NULL DEFAULT '',
  archive_key TEXT NOT NULL DEFAULT '',
  archive_upload_id TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE(export_id, name)
);
INSERT INTO files VALUES(1,1,'Patient.ndjson',100,1,11,1,'pending',0,0,0,0,'','','','','','');
INSERT INTO files VALUES(2,1,'Observation.ndjson',300,2,12,1,'pending',0,0,0,0,'','','','','','');
INSERT INTO files VALUES(3,2,'Patient.ndjson',100,1,11,1,'spooled',5,1,100,30,'crc-Patient.ndjson','','','','','');
INSERT INTO files VALUES(4,2,'Observation.ndjson',300,2,12,1,'spooled',5,1,100,30,'crc-Observation.ndjson','','','','','');
INSERT INTO files VALUES(5,3,'Patient.ndjson',100,1,11,1,'spooled',5,1,100,30,'crc-Patient.ndjson','','','','','');
INSERT INTO files VALUES(6,3,'Observation.ndjson',300,2,12,1,'spooled',5,1,100,30,'crc-Observation.ndjson','','','','','');
INSERT INTO files VALUES(7,4,'Patient.ndjson',100,1,11,1,'spooled',5,1,100,30,'crc-Patient.ndjson','','','','','');
INSERT INTO files VALUES(8,4,'Observation.ndjson',300,2,12,1,'spooled',5,1,100,30,'crc-Observation.ndjson','','','','','');
INSERT INTO files VALUES(9,5,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(10,5,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(11,6,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(12,6,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(13,7,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(14,7,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(15,8,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(16,8,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(17,9,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(18,9,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(19,10,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(20,10,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(21,11,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(22,11,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(23,12,'Patient.ndjson',100,1,11,1,'uploaded',5,1,100,30,'crc-Patient.ndjson','pre/x/import/Patient.ndjson','up-Patient.ndjson','pre/x/archive/Patient.ndjson.zst','','');
INSERT INTO files VALUES(24,12,'Observation.ndjson',300,2,12,1,'uploaded',5,1,100,30,'crc-Observation.ndjson','pre/x/import/Observation.ndjson','up-Observation.ndjson','pre/x/archive/Observation.ndjson.zst','','');
INSERT INTO files VALUES(25,13,'Patient.ndjson',100,1,11,1,'pending',0,0,0,0,'','','','','','');
INSERT INTO files VALUES(26,13,'Observation.ndjson',300,2,12,1,'pending',0,0,0,0,'','','','','','');
INSERT INTO files VALUES(27,14,'Patient.ndjson',100,1,11,1,'pending',0,0,0,0,'','','','','','');
INSERT INTO files VALUES(28,14,'Observation.ndjson',300,2,12,1,'pending',0,0,0,0,'','','','','','');
CREATE TABLE parts(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK(kind IN ('import','archive')),
  part_number INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  etag TEXT NOT NULL DEFAULT '',
  crc32c TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  PRIMARY KEY(file_id, kind, part_number)
);
INSERT INTO parts VALUES(4,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(4,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(4,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(3,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(3,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(3,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(6,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(6,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(6,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(5,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(5,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(5,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(8,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(8,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(8,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(7,'import',1,0,60,'','AAAAAA==','pending');
INSERT INTO parts VALUES(7,'import',2,60,40,'','','pending');
INSERT INTO parts VALUES(7,'archive',1,0,30,'','','pending');
INSERT INTO parts VALUES(10,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(10,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(10,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(9,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(9,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(9,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(12,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(12,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(12,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(11,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(11,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(11,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(14,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(14,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(14,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(13,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(13,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(13,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(16,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(16,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(16,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(15,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(15,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(15,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(18,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(18,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(18,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(17,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(17,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(17,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(20,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(20,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(20,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(19,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(19,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(19,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(22,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(22,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(22,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(21,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(21,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(21,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(24,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(24,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(24,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
INSERT INTO parts VALUES(23,'import',1,0,60,'etag1','AAAAAA==','uploaded');
INSERT INTO parts VALUES(23,'import',2,60,40,'etag2','BBBBBB==','uploaded');
INSERT INTO parts VALUES(23,'archive',1,0,30,'etag3','CCCCCC==','uploaded');
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  export_id INTEGER,
  file_id INTEGER,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
INSERT INTO events VALUES(1,1796511715809,NULL,NULL,'migration','journal schema migrated to version 1');
INSERT INTO events VALUES(2,1796511715841,NULL,NULL,'migration','journal schema migrated to version 2');
INSERT INTO events VALUES(3,1796511715880,NULL,NULL,'migration','journal schema migrated to version 3');
INSERT INTO events VALUES(4,1796511715896,NULL,NULL,'migration','journal schema migrated to version 4');
INSERT INTO events VALUES(5,1796511715912,NULL,NULL,'migration','journal schema migrated to version 5');
INSERT INTO events VALUES(6,1796511716141,NULL,NULL,'compact','removed 1 finished exports (tombstones kept: their sources are not taken again)');
INSERT INTO events VALUES(7,1796511716142,1,NULL,'state','discovered /in/discovered (2 files, version 1)');
INSERT INTO events VALUES(8,1796511716142,2,NULL,'state','discovered /in/spooling (2 files, version 1)');
INSERT INTO events VALUES(9,1796511716148,2,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(10,1796511716148,2,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(11,1796511716149,2,4,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(12,1796511716152,2,4,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(13,1796511716192,2,3,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(14,1796511716200,2,3,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(15,1796511716226,3,NULL,'state','discovered /in/uploading (2 files, version 1)');
INSERT INTO events VALUES(16,1796511716226,3,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(17,1796511716241,3,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(18,1796511716252,3,6,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(19,1796511716280,3,6,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(20,1796511716284,3,5,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(21,1796511716291,3,5,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(22,1796511716296,3,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(23,1796511716308,3,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(24,1796511716316,3,NULL,'error','SlowDown (retrying)');
INSERT INTO events VALUES(25,1796511716328,4,NULL,'state','discovered /in/parked-upload (2 files, version 1)');
INSERT INTO events VALUES(26,1796511716340,4,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(27,1796511716352,4,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(28,1796511716360,4,8,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(29,1796511716388,4,8,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(30,1796511716400,4,7,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(31,1796511716428,4,7,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(32,1796511716430,4,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(33,1796511716436,4,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(34,1796511716440,4,NULL,'park','uploading -> parked: AccessDenied on PutObject');
INSERT INTO events VALUES(35,1796511716444,5,NULL,'state','discovered /in/uploaded (2 files, version 1)');
INSERT INTO events VALUES(36,1796511716448,5,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(37,1796511716452,5,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(38,1796511716456,5,10,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(39,1796511716464,5,10,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(40,1796511716468,5,9,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(41,1796511716476,5,9,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(42,1796511716480,5,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(43,1796511716484,5,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(44,1796511716488,5,10,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(45,1796511716493,5,10,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(46,1796511716520,5,10,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(47,1796511716539,5,10,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(48,1796511716544,5,9,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(49,1796511716547,5,9,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(50,1796511716552,5,9,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(51,1796511716572,5,9,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(52,1796511716572,5,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(53,1796511716581,6,NULL,'state','discovered /in/starting (2 files, version 1)');
INSERT INTO events VALUES(54,1796511716584,6,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(55,1796511716588,6,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(56,1796511716592,6,12,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(57,1796511716615,6,12,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(58,1796511716615,6,11,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(59,1796511716620,6,11,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(60,1796511716624,6,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(61,1796511716628,6,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(62,1796511716640,6,12,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(63,1796511716644,6,12,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(64,1796511716648,6,12,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(65,1796511716673,6,12,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(66,1796511716674,6,11,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(67,1796511716674,6,11,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(68,1796511716681,6,11,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(69,1796511716684,6,11,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(70,1796511716684,6,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(71,1796511716685,6,NULL,'import','import job starting prepared (ValidationLevel strict)');
INSERT INTO events VALUES(72,1796511716685,6,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(73,1796511716686,6,NULL,'error','ThrottlingException (retrying later with the same token)');
INSERT INTO events VALUES(74,1796511716687,7,NULL,'state','discovered /in/importing (2 files, version 1)');
INSERT INTO events VALUES(75,1796511716687,7,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(76,1796511716688,7,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(77,1796511716688,7,14,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(78,1796511716697,7,14,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(79,1796511716708,7,13,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(80,1796511716736,7,13,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(81,1796511716744,7,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(82,1796511716752,7,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(83,1796511716788,7,14,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(84,1796511716840,7,14,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(85,1796511716841,7,14,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(86,1796511716843,7,14,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(87,1796511716844,7,13,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(88,1796511716844,7,13,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(89,1796511716848,7,13,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(90,1796511716852,7,13,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(91,1796511716853,7,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(92,1796511716853,7,NULL,'import','import job importing prepared (ValidationLevel strict)');
INSERT INTO events VALUES(93,1796511716854,7,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(94,1796511716854,7,NULL,'import','import job job-importing SUBMITTED');
INSERT INTO events VALUES(95,1796511716860,7,NULL,'state','import_starting -> importing');
INSERT INTO events VALUES(96,1796511716860,7,NULL,'import','import job status SUBMITTED -> IN_PROGRESS');
INSERT INTO events VALUES(97,1796511716861,7,NULL,'import','HealthLake reports ValidationLevel strict');
INSERT INTO events VALUES(98,1796511716861,8,NULL,'state','discovered /in/imported (2 files, version 1)');
INSERT INTO events VALUES(99,1796511716862,8,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(100,1796511716862,8,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(101,1796511716863,8,16,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(102,1796511716864,8,16,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(103,1796511716868,8,15,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(104,1796511716873,8,15,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(105,1796511716876,8,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(106,1796511716881,8,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(107,1796511716882,8,16,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(108,1796511716884,8,16,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(109,1796511716886,8,16,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(110,1796511716912,8,16,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(111,1796511716924,8,15,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(112,1796511716932,8,15,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(113,1796511716940,8,15,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(114,1796511716984,8,15,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(115,1796511717024,8,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(116,1796511717044,8,NULL,'import','import job imported prepared (ValidationLevel strict)');
INSERT INTO events VALUES(117,1796511717072,8,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(118,1796511717073,8,NULL,'import','import job job-imported SUBMITTED');
INSERT INTO events VALUES(119,1796511717081,8,NULL,'state','import_starting -> importing');
INSERT INTO events VALUES(120,1796511717082,8,NULL,'import','import job status SUBMITTED -> COMPLETED');
INSERT INTO events VALUES(121,1796511717088,8,NULL,'import','import outcome recorded');
INSERT INTO events VALUES(122,1796511717092,8,NULL,'state','importing -> imported: 10 imported');
INSERT INTO events VALUES(123,1796511717093,9,NULL,'state','discovered /in/failed-import (2 files, version 1)');
INSERT INTO events VALUES(124,1796511717096,9,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(125,1796511717096,9,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(126,1796511717097,9,18,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(127,1796511717100,9,18,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(128,1796511717101,9,17,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(129,1796511717102,9,17,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(130,1796511717103,9,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(131,1796511717103,9,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(132,1796511717104,9,18,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(133,1796511717108,9,18,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(134,1796511717108,9,18,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(135,1796511717110,9,18,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(136,1796511717111,9,17,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(137,1796511717111,9,17,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(138,1796511717112,9,17,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(139,1796511717116,9,17,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(140,1796511717116,9,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(141,1796511717117,9,NULL,'import','import job failed-import prepared (ValidationLevel strict)');
INSERT INTO events VALUES(142,1796511717117,9,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(143,1796511717118,9,NULL,'import','import job job-failed SUBMITTED');
INSERT INTO events VALUES(144,1796511717119,9,NULL,'state','import_starting -> importing');
INSERT INTO events VALUES(145,1796511717120,9,NULL,'import','import job status SUBMITTED -> FAILED');
INSERT INTO events VALUES(146,1796511717120,9,NULL,'import','import outcome recorded');
INSERT INTO events VALUES(147,1796511717121,9,NULL,'state','importing -> import_failed: job FAILED: bad input');
INSERT INTO events VALUES(148,1796511717124,10,NULL,'state','discovered /in/retried (2 files, version 1)');
INSERT INTO events VALUES(149,1796511717125,10,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(150,1796511717125,10,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(151,1796511717125,10,20,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(152,1796511717127,10,20,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(153,1796511717127,10,19,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(154,1796511717133,10,19,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(155,1796511717133,10,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(156,1796511717134,10,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(157,1796511717134,10,20,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(158,1796511717135,10,20,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(159,1796511717135,10,20,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(160,1796511717137,10,20,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(161,1796511717138,10,19,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(162,1796511717138,10,19,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(163,1796511717140,10,19,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(164,1796511717156,10,19,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(165,1796511717160,10,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(166,1796511717164,10,NULL,'import','import job retried prepared (ValidationLevel strict)');
INSERT INTO events VALUES(167,1796511717168,10,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(168,1796511717169,10,NULL,'import','import job job-retried-1 SUBMITTED');
INSERT INTO events VALUES(169,1796511717172,10,NULL,'state','import_starting -> importing');
INSERT INTO events VALUES(170,1796511717182,10,NULL,'import','import job status SUBMITTED -> FAILED');
INSERT INTO events VALUES(171,1796511717183,10,NULL,'import','import outcome recorded');
INSERT INTO events VALUES(172,1796511717187,10,NULL,'state','importing -> import_failed: job FAILED');
INSERT INTO events VALUES(173,1796511717193,10,NULL,'retry','import_failed -> uploaded: import attempt 2');
INSERT INTO events VALUES(174,1796511717193,10,NULL,'import','import job retried-2 prepared (ValidationLevel strict)');
INSERT INTO events VALUES(175,1796511717193,10,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(176,1796511717194,11,NULL,'state','discovered /in/nothing (2 files, version 1)');
INSERT INTO events VALUES(177,1796511717195,11,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(178,1796511717195,11,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(179,1796511717196,11,22,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(180,1796511717197,11,22,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(181,1796511717197,11,21,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(182,1796511717198,11,21,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(183,1796511717199,11,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(184,1796511717199,11,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(185,1796511717199,11,22,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(186,1796511717204,11,22,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(187,1796511717204,11,22,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(188,1796511717205,11,22,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(189,1796511717206,11,21,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(190,1796511717206,11,21,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(191,1796511717206,11,21,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(192,1796511717207,11,21,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(193,1796511717208,11,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(194,1796511717208,11,NULL,'state','uploaded -> nothing_to_import: no file has a valid resource');
INSERT INTO events VALUES(195,1796511717208,12,NULL,'state','discovered /in/parked-import (2 files, version 1)');
INSERT INTO events VALUES(196,1796511717209,12,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(197,1796511717209,12,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(198,1796511717209,12,24,'file','Observation.ndjson: pending -> spooling');
INSERT INTO events VALUES(199,1796511717210,12,24,'file','Observation.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(200,1796511717212,12,23,'file','Patient.ndjson: pending -> spooling');
INSERT INTO events VALUES(201,1796511717212,12,23,'file','Patient.ndjson: spooled (5 valid, 1 rejected, 30 bytes)');
INSERT INTO events VALUES(202,1796511717213,12,NULL,'state','spooling -> spooled');
INSERT INTO events VALUES(203,1796511717214,12,NULL,'state','spooled -> uploading');
INSERT INTO events VALUES(204,1796511717216,12,24,'file','Observation.ndjson: spooled -> uploading');
INSERT INTO events VALUES(205,1796511717216,12,24,'upload','Observation.ndjson: import upload up-Observation.ndjson to pre/x/import/Observation.ndjson');
INSERT INTO events VALUES(206,1796511717216,12,24,'upload','Observation.ndjson: archive upload (single PUT) to pre/x/archive/Observation.ndjson.zst');
INSERT INTO events VALUES(207,1796511717223,12,24,'file','Observation.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(208,1796511717224,12,23,'file','Patient.ndjson: spooled -> uploading');
INSERT INTO events VALUES(209,1796511717224,12,23,'upload','Patient.ndjson: import upload up-Patient.ndjson to pre/x/import/Patient.ndjson');
INSERT INTO events VALUES(210,1796511717224,12,23,'upload','Patient.ndjson: archive upload (single PUT) to pre/x/archive/Patient.ndjson.zst');
INSERT INTO events VALUES(211,1796511717229,12,23,'file','Patient.ndjson: uploading -> uploaded');
INSERT INTO events VALUES(212,1796511717229,12,NULL,'state','uploading -> uploaded');
INSERT INTO events VALUES(213,1796511717230,12,NULL,'import','import job parked-import prepared (ValidationLevel strict)');
INSERT INTO events VALUES(214,1796511717230,12,NULL,'state','uploaded -> import_starting');
INSERT INTO events VALUES(215,1796511717230,12,NULL,'import','import job job-parked SUBMITTED');
INSERT INTO events VALUES(216,1796511717230,12,NULL,'state','import_starting -> importing');
INSERT INTO events VALUES(217,1796511717231,12,NULL,'park','importing -> parked: ResourceNotFoundException: job vanished');
INSERT INTO events VALUES(218,1796511717231,13,NULL,'state','discovered /in/given-up (2 files, version 1)');
INSERT INTO events VALUES(219,1796511717231,13,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(220,1796511717232,13,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(221,1796511717232,13,NULL,'error','spooling -> failed: on_invalid: fail-export');
INSERT INTO events VALUES(222,1796511717236,14,NULL,'state','discovered /in/superseded (2 files, version 1)');
INSERT INTO events VALUES(223,1796511717236,14,NULL,'state','discovered -> complete');
INSERT INTO events VALUES(224,1796511717236,14,NULL,'state','complete -> spooling');
INSERT INTO events VALUES(225,1796511717237,14,NULL,'state','spooling -> superseded: source changed');
CREATE TABLE IF NOT EXISTS "import_jobs"(
  id INTEGER PRIMARY KEY,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL DEFAULT 1,
  part INTEGER NOT NULL DEFAULT 1,
  input_uri TEXT NOT NULL DEFAULT '',
  client_token TEXT NOT NULL UNIQUE,
  job_name TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  progress_json TEXT NOT NULL DEFAULT '',
  submitted_at INTEGER NOT NULL,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL, validation_level TEXT NOT NULL DEFAULT '', reported_level TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
  UNIQUE(export_id, attempt, part)
);
INSERT INTO import_jobs VALUES(1,6,1,1,'s3://b/pre/starting/import/','tok-starting','starting','','','',1796511716685,'',1796511716685,'strict','','');
INSERT INTO import_jobs VALUES(2,7,1,1,'s3://b/pre/importing/import/','tok-importing','importing','job-importing','IN_PROGRESS','{"scanned":3}',1796511716853,'',1796511716861,'strict','strict','');
INSERT INTO import_jobs VALUES(3,8,1,1,'s3://b/pre/imported/import/','tok-imported','imported','job-imported','COMPLETED','{}',1796511717044,'{"resources_imported":10}',1796511717088,'strict','','');
INSERT INTO import_jobs VALUES(4,9,1,1,'s3://b/pre/f/import/','tok-failed','failed-import','job-failed','FAILED','{}',1796511717117,'{"resources_imported":0}',1796511717120,'strict','','');
INSERT INTO import_jobs VALUES(5,10,1,1,'s3://b/pre/r/import/','tok-retried-1','retried','job-retried-1','FAILED','{}',1796511717163,'{"resources_imported":0}',1796511717183,'strict','','');
INSERT INTO import_jobs VALUES(6,10,2,1,'s3://b/pre/r/import/','tok-retried-2','retried-2','','','',1796511717193,'',1796511717193,'strict','','');
INSERT INTO import_jobs VALUES(7,12,1,1,'s3://b/pre/pi/import/','tok-parked','parked-import','job-parked','SUBMITTED','',1796511717230,'',1796511717230,'strict','','');
CREATE TABLE requests(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  args TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT 'pending',
  result TEXT NOT NULL DEFAULT '',
  done_at INTEGER
);
INSERT INTO requests VALUES(1,1796511717237,'retry','parked-upload','','done','resumed as uploading',1796511717237);
INSERT INTO requests VALUES(2,1796511717237,'retry','imported','','refused','imported is terminal',1796511717238);
INSERT INTO requests VALUES(3,1796511717240,'compact','','7776000','pending','',NULL);
CREATE TABLE tombstones(
  pipeline TEXT NOT NULL,
  source_path TEXT NOT NULL,
  digest TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  files INTEGER NOT NULL DEFAULT 0,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  finished_at INTEGER,
  compacted_at INTEGER NOT NULL,
  PRIMARY KEY(pipeline, source_path, digest)
) WITHOUT ROWID;
INSERT INTO tombstones VALUES('p','/in/old','sha256:old','old',1,'imported',2,10,2,1796511715924,1796511716140,1796511716140);
CREATE TABLE line_map(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  import_line INTEGER NOT NULL,
  source_line INTEGER NOT NULL,
  PRIMARY KEY(file_id, import_line)
) WITHOUT ROWID;
INSERT INTO line_map VALUES(3,3,4);
INSERT INTO line_map VALUES(4,3,4);
INSERT INTO line_map VALUES(5,3,4);
INSERT INTO line_map VALUES(6,3,4);
INSERT INTO line_map VALUES(7,3,4);
INSERT INTO line_map VALUES(8,3,4);
INSERT INTO line_map VALUES(9,3,4);
INSERT INTO line_map VALUES(10,3,4);
INSERT INTO line_map VALUES(11,3,4);
INSERT INTO line_map VALUES(12,3,4);
INSERT INTO line_map VALUES(13,3,4);
INSERT INTO line_map VALUES(14,3,4);
INSERT INTO line_map VALUES(15,3,4);
INSERT INTO line_map VALUES(16,3,4);
INSERT INTO line_map VALUES(17,3,4);
INSERT INTO line_map VALUES(18,3,4);
INSERT INTO line_map VALUES(19,3,4);
INSERT INTO line_map VALUES(20,3,4);
INSERT INTO line_map VALUES(21,3,4);
INSERT INTO line_map VALUES(22,3,4);
INSERT INTO line_map VALUES(23,3,4);
INSERT INTO line_map VALUES(24,3,4);
CREATE INDEX events_export ON events(export_id);
CREATE INDEX exports_state ON exports(state);
CREATE INDEX requests_state ON requests(state);
CREATE INDEX tombstones_name ON tombstones(name);
COMMIT;
PRAGMA user_version=5;
