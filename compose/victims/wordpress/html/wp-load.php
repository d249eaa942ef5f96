<?php
/**
 * Bootstrap file (lab copy: nothing here runs).
 */
define( 'ABSPATH', __DIR__ . '/' );
require_once ABSPATH . 'wp-config.php';
