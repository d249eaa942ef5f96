<?php
/**
 * Lab configuration. The credentials are made up for the lab and open nothing.
 */
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wordpress' );
define( 'DB_PASSWORD', 'lab-not-a-real-password' );
define( 'DB_HOST', 'db:3306' );
$table_prefix = 'wp_';
