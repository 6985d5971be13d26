-- depends: 0005.meter-deactivation
DROP TABLE ui_sessions;
