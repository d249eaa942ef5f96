<?php
/**
 * Front to the WordPress application (lab copy: nothing here runs).
 */
define( 'WP_USE_THEMES', true );
require __DIR__ . '/wp-blog-header.php';
