-- depends: 0006.reports
DROP TABLE ui_sessions;
